import Foundation
import GGUF
import Testing
@testable import ModelRuntime

/// JSON schemas to llama.cpp grammars: what the converter refuses, and what real llama.cpp
/// generates under its grammars from a random tiny model (which would otherwise write bytes at
/// random): JSON that satisfies the schema, whatever the seed.
@Suite(.serialized) struct JSONGrammarTests {
    static func schema(_ text: String) -> Any { try! JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed) }

    @Test func whatTheGrammarCannotExpressIsRefusedByName() {
        for (text, named) in [(#"{"type": "object", "patternProperties": {}}"#, "patternProperties"),
                              (#"{"type": "string", "pattern": "^a"}"#, "pattern"),
                              (#"{"allOf": [{"type": "string"}]}"#, "allOf"),
                              (#"{"type": "date"}"#, "date"),
                              (#"{"enum": []}"#, "enum"),
                              (##"{"$ref": "#/$defs/nowhere"}"##, "#/$defs/nowhere"),
                              (#"{"type": "array", "minItems": 3, "maxItems": 1}"#, "minItems"),
                              (##"{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##, "itself"),
                              (String(repeating: #"{"type": "array", "items": "#, count: 70) + "{}" + String(repeating: "}", count: 70), "64 levels"),
                              ("false", "false"), ("3", "object")] {
            #expect(throws: JSONGrammar.Unsupported.self, "\(text)") { _ = try JSONGrammar.gbnf(schema: Self.schema(text)) }
            do { _ = try JSONGrammar.gbnf(schema: Self.schema(text)) } catch {
                #expect(error.description.contains(named), "\(text): \(error)")
            }
        }
    }

    @Test func aRandomModelUnderTheGrammarWritesJSONTheSchemaAccepts() async throws {
        let directory = "/tmp/depot-grammar-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/m.gguf"
        try TinyModels.llama(seed: 11).write(to: path)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 512), keepAlive: nil)
        _ = try await runtime.activate(ModelFiles(name: "m:tiny", weights: path))
        let schema = Self.schema(##"""
            {"type": "object", "required": ["id", "tags", "size"],
             "properties": {"size": {"enum": ["s", "m", 3, null]}, "id": {"type": "integer"},
                            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1, "maxItems": 3},
                            "ok": {"type": ["boolean", "null"]}, "label": {"type": "string", "maxLength": 5},
                            "score": {"anyOf": [{"type": "number"}, {"const": "none"}]}},
             "$defs": {"tag": {"type": "string", "maxLength": 3}}}
            """##)
        let grammar = try JSONGrammar.gbnf(schema: schema)
        for seed: UInt32 in 1...6 {
            var options = GenerationOptions()
            options.temperature = 1
            options.seed = seed
            options.maximumTokens = 300
            options.grammar = grammar
            let answer = try await runtime.generate(prompt: "{", options: options)
            #expect(answer.doneReason == "stop", "seed \(seed): \(answer.text)")
            let value = try #require(try? JSONSerialization.jsonObject(with: Data(answer.text.utf8)) as? [String: Any], "seed \(seed): \(answer.text)")
            #expect(Array(value.keys).sorted() == ["id", "label", "ok", "score", "size", "tags"])
            #expect(value["id"] is Int)
            let tags = value["tags"] as? [String] ?? []
            #expect((1...3).contains(tags.count) && tags.allSatisfy { $0.count <= 3 }, "\(tags)")
            #expect((value["label"] as? String).map { $0.count <= 5 } == true)
            #expect(value["ok"] is Bool || value["ok"] is NSNull)
            #expect(value["score"] is Double || value["score"] is Int || value["score"] as? String == "none")
            let size = value["size"]
            #expect(size as? String == "s" || size as? String == "m" || size as? Int == 3 || size is NSNull, "\(String(describing: size))")
        }
        var options = GenerationOptions()
        options.grammar = JSONGrammar.anyJSON
        options.maximumTokens = 200
        options.seed = 1
        let anything = try await runtime.generate(prompt: "{", options: options)
        #expect(["{", "["].contains(anything.text.first.map(String.init) ?? ""), "\(anything.text)")
        options.grammar = "root ::= ( unclosed"
        await #expect(throws: RuntimeError.self, "a grammar llama.cpp cannot parse is an error, not a crash") {
            _ = try await runtime.generate(prompt: "{", options: options)
        }
    }
}
