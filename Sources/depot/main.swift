import Crypto
import GRDB
import ArgumentParser
print("hi")
