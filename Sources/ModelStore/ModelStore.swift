import GGUF
public enum Placeholder2 {}
