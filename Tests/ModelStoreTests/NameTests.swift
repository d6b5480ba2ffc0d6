import Testing
@testable import ModelStore

@Suite struct NameTests {
    @Test(arguments: ["qwen2.5-coder:1.5b-q4_k_m", "llama3", "A_b.c-d:e", "phi3:latest", "x", "myns/model:tag",
                      "hf.co/bartowski/qwen2.5-7b-instruct-gguf:q4_k_m", "library/qwen2.5:7b"])
    func goodNames(name: String) throws {
        try ModelName.validate(name)
    }

    @Test(arguments: ["", "../x", "a//b", "/abs:x", "a/:x", "ns/../x:y", "ns/.hidden:x", "a:b/c", "a/b/c/d:e", "ns/-x:y", "a\\b", "a\0b", "a\nb", "tab\there", "a:b:c", ":x", "x:", "..", ".hidden",
                      "-flag", "a..b:c", "emoji🙂", "spa ce", String(repeating: "a", count: 201)])
    func badNames(name: String) {
        let error = storeError { try ModelName.validate(name) }
        #expect(error?.code == .invalidName)
        #expect(error?.message.isEmpty == false)
    }

    @Test func badNameMessagesNameTheCharacter() {
        #expect(storeError { try ModelName.validate("a\0b") }?.message.contains("NUL") == true)
        #expect(storeError { try ModelName.validate("a/b c") }?.message.contains("' '") == true)
        #expect(storeError { try ModelName.validate("a/b/c/d") }?.message.contains("host/namespace/model:tag") == true)
        #expect(storeError { try ModelName.validate("a\u{1}b") }?.message.contains("control character") == true)
        #expect(storeError { try AppID.validate("com/evil") }?.code == .invalidName)
    }

    @Test(arguments: [
        ("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf", "Q4_K_M", "qwen2.5-coder-1.5b-instruct:q4_k_m"),
        ("model.gguf", nil, "model:latest"),
        ("Weird Name (v2).gguf", "Q8_0", "weird-name--v2-:q8_0"),
        ("...gguf", "F16", "model:f16"),
        ("llama.q8_0.gguf", "Q8_0", "llama:q8_0"),
    ] as [(String, String?, String)])
    func derivedNamesAreValid(filename: String, quantization: String?, expected: String) throws {
        let name = ModelName.derive(fromFilename: filename, quantization: quantization)
        #expect(name == expected)
        try ModelName.validate(name)
    }

    @Test func byteCounts() {
        #expect(ByteCount.parse("1234") == 1234)
        #expect(ByteCount.parse("500MB") == 500_000_000)
        #expect(ByteCount.parse("1.5G") == 1_500_000_000)
        #expect(ByteCount.parse("2GiB") == 2 << 30)
        #expect(ByteCount.parse("4 kib") == 4096)
        #expect(ByteCount.parse("lots") == nil)
        #expect(ByteCount.parse("-5") == nil)
        #expect(ByteCount.parse("5XB") == nil)
        #expect(ByteCount.format(1_500_000_000) == "1.5 GB")
        #expect(ByteCount.format(999) == "999 B")
    }

    @Test func defaultStoreLocation() {
        #expect(StoreLocation.defaultRoot(environment: ["DEPOT_HOME": "/d", "XDG_DATA_HOME": "/x", "HOME": "/h"]) == "/d")
        #expect(StoreLocation.defaultRoot(environment: ["XDG_DATA_HOME": "/x", "HOME": "/h"]) == "/x/depot")
        #expect(StoreLocation.defaultRoot(environment: ["HOME": "/h"]) == "/h/.local/share/depot")
    }
}
