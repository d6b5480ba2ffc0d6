import Foundation

/// GBNF grammars (llama.cpp's grammar sampler) that hold a model's output to JSON: any JSON
/// value (Ollama's `format: "json"`), or a value of a JSON schema (`format: {schema}`, OpenAI's
/// `json_schema`). The schema subset is what structured-output clients send: `type` (object,
/// array, string, number, integer, boolean, null, or a list of them), `properties`, `required`,
/// `items`, `enum`, `const`, `anyOf`/`oneOf`, `minItems`/`maxItems`, `maxLength`, `$ref` to
/// `#/$defs/…` or `#/definitions/…`, and annotations (`title`, `description`, …). Anything
/// else is refused by name rather than ignored. Objects list every property, the required ones
/// first, so what comes out always satisfies the schema.
public enum JSONGrammar {
    /// A schema this converter cannot hold output to.
    public struct Unsupported: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Any JSON value (an object or an array at the top, as Ollama's JSON mode).
    public static let anyJSON = """
        root ::= object | array
        \(commonRules)
        """

    /// Keywords that only describe and change nothing about which values are valid.
    static let annotations: Set<String> = ["title", "description", "examples", "default", "$schema", "$id", "$comment",
                                           "additionalProperties", "format", "deprecated", "readOnly", "writeOnly"]

    /// The grammar for values of `schema` (a decoded JSON object).
    public static func gbnf(schema: Any) throws(Unsupported) -> String {
        var builder = Builder(root: schema)
        let root = try builder.rule(for: schema, name: "root")
        return (root == "root" ? "" : "root ::= \(root)\n") + builder.text
    }

    /// The grammar for the text `before`, a value of `schema`, then the text `after` (a tool
    /// call in its markers).
    public static func gbnf(schema: Any, between before: String, and after: String) throws(Unsupported) -> String {
        var builder = Builder(root: schema)
        let value = try builder.rule(for: schema, name: "framed")
        return "root ::= \(quoted(before)) \(value) \(quoted(after))\n" + builder.text
    }

    /// A GBNF string literal of `text`.
    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// Rules every grammar here shares. Whitespace is a space, or a line break and an indent
    /// of up to 16 spaces, so a model cannot spend its tokens on it. Numbers have at most 16
    /// digits before the point and a two-digit exponent, so every parser reads them as a
    /// double. String characters are listed as the ranges of valid scalars (no controls,
    /// surrogates or values past U+10FFFF, which llama.cpp's decoder would otherwise let
    /// through from stray bytes), so what the grammar counts is what the client decodes.
    static let commonRules = #"""
        value ::= object | array | string | number | boolean | null
        object ::= "{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}" ws
        array ::= "[" ws ( value ( "," ws value )* )? "]" ws
        string ::= "\"" char* "\"" ws
        char ::= [ !#-\[\]-~\u00A0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
        number ::= digits ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )? ws
        integer ::= digits ws
        digits ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
        boolean ::= ( "true" | "false" ) ws
        null ::= "null" ws
        ws ::= ( " " | "\n" [ ]{0,16} )?
        """#

    private struct Builder {
        let root: Any
        var rules: [(name: String, body: String)] = []
        var named: [String: String] = [:]
        /// Schemas being converted, innermost last: nesting is bounded.
        var depth = 0

        init(root: Any) { self.root = root }

        /// The rules made, then the shared ones.
        var text: String { rules.map { "\($0.name) ::= \($0.body)" }.joined(separator: "\n") + "\n" + JSONGrammar.commonRules }

        /// A rule for `schema`, named after `name` (made unique); returns the rule's name, or
        /// a shared rule's name for a plain type.
        mutating func rule(for schema: Any, name: String) throws(Unsupported) -> String {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 64 else { throw Unsupported(description: "the schema nests deeper than 64 levels") }
            if let flag = schema as? Bool {
                guard flag else { throw Unsupported(description: "the schema 'false' allows no value") }
                return "value"
            }
            guard let schema = schema as? [String: Any] else { throw Unsupported(description: "a schema must be an object") }
            if let reference = schema["$ref"] as? String { return try resolve(reference) }
            let known: Set<String> = ["type", "properties", "required", "items", "enum", "const", "anyOf", "oneOf",
                                      "minItems", "maxItems", "maxLength", "$ref", "$defs", "definitions"]
            if let unknown = schema.keys.sorted().first(where: { !known.contains($0) && !JSONGrammar.annotations.contains($0) }) {
                throw Unsupported(description: "the schema keyword '\(unknown)' is not supported")
            }
            if let value = schema["const"] { return try add(name, literal(value)) }
            if let values = schema["enum"] {
                guard let values = values as? [Any], !values.isEmpty else { throw Unsupported(description: "'enum' must list values") }
                return try add(name, values.map { value throws(Unsupported) in try literal(value) }.joined(separator: " | "))
            }
            if let choices = (schema["anyOf"] ?? schema["oneOf"]) {
                guard let choices = choices as? [Any], !choices.isEmpty else { throw Unsupported(description: "'anyOf' must list schemas") }
                var names: [String] = []
                for (index, choice) in choices.enumerated() { names.append(try rule(for: choice, name: "\(name)-\(index)")) }
                return try add(name, names.joined(separator: " | "))
            }
            switch schema["type"] {
            case nil:
                return schema["properties"] != nil ? try object(schema, name: name) : "value"
            case let type as String:
                return try typed(type, schema, name: name)
            case let types as [String]:
                var names: [String] = []
                for type in types { names.append(try typed(type, schema, name: "\(name)-\(type)")) }
                return try add(name, names.joined(separator: " | "))
            default:
                throw Unsupported(description: "'type' must be a type name or a list of them")
            }
        }

        private mutating func typed(_ type: String, _ schema: [String: Any], name: String) throws(Unsupported) -> String {
            switch type {
            case "object": return try object(schema, name: name)
            case "array": return try array(schema, name: name)
            case "string":
                guard let limit = schema["maxLength"] else { return "string" }
                guard let maximum = limit as? Int, maximum >= 0 else { throw Unsupported(description: "'maxLength' must be a whole number") }
                return try add(name, #""\"" char{0,\#(maximum)} "\"" ws"#)
            case "number": return "number"
            case "integer": return "integer"
            case "boolean": return "boolean"
            case "null": return "null"
            default: throw Unsupported(description: "the type '\(type)' is not a JSON schema type")
            }
        }

        private mutating func object(_ schema: [String: Any], name: String) throws(Unsupported) -> String {
            guard let properties = schema["properties"] as? [String: Any] else { return "object" }
            let required = schema["required"] as? [String] ?? []
            let order = required.filter { properties[$0] != nil } + properties.keys.sorted().filter { !required.contains($0) }
            var parts: [String] = []
            for key in order {
                let value = try rule(for: properties[key]!, name: "\(name)-\(Self.ruleName(key))")
                parts.append("\(try literal(key)) \":\" ws \(value)")
            }
            return try add(name, "\"{\" ws " + parts.joined(separator: " \",\" ws ") + " \"}\" ws")
        }

        private mutating func array(_ schema: [String: Any], name: String) throws(Unsupported) -> String {
            let item = try schema["items"].map { items throws(Unsupported) in try rule(for: items, name: "\(name)-item") } ?? "value"
            let minimum = schema["minItems"] as? Int ?? 0, maximum = schema["maxItems"] as? Int
            guard minimum >= 0, maximum.map({ $0 >= minimum }) ?? true else {
                throw Unsupported(description: "'minItems' and 'maxItems' must be whole numbers, the least first")
            }
            let rest = "( \",\" ws \(item) )"
            let body: String
            switch (minimum, maximum) {
            case (_, 0?): body = #""[" ws "]" ws"#
            case (0, nil): body = #""[" ws ( \#(item) \#(rest)* )? "]" ws"#
            case (0, let maximum?): body = #""[" ws ( \#(item) \#(rest){0,\#(maximum - 1)} )? "]" ws"#
            case (let minimum, nil): body = #""[" ws \#(item) \#(rest){\#(minimum - 1),} "]" ws"#
            case (let minimum, let maximum?): body = #""[" ws \#(item) \#(rest){\#(minimum - 1),\#(maximum - 1)} "]" ws"#
            }
            return try add(name, body)
        }

        /// A `$ref` into the root schema's `$defs` or `definitions`, converted once.
        private mutating func resolve(_ reference: String) throws(Unsupported) -> String {
            if let known = named[reference] { return known }
            let path = reference.split(separator: "/").map(String.init)
            guard path.count == 3, path[0] == "#", ["$defs", "definitions"].contains(path[1]),
                  let definitions = (root as? [String: Any])?[path[1]] as? [String: Any], let target = definitions[path[2]] else {
                throw Unsupported(description: "the reference '\(reference)' does not name a definition of this schema")
            }
            let name = "ref-" + Self.ruleName(path[2])
            named[reference] = name
            let made = try rule(for: target, name: name)
            guard made != name || rules.contains(where: { $0.name == name }) else {
                throw Unsupported(description: "the reference '\(reference)' refers only to itself")
            }
            if made != name { rules.append((name, made)) }
            return name
        }

        private mutating func add(_ name: String, _ body: String) throws(Unsupported) -> String {
            var unique = name, suffix = 1
            while rules.contains(where: { $0.name == unique }) {
                suffix += 1
                unique = "\(name)\(suffix)"
            }
            guard rules.count < 1_000 else { throw Unsupported(description: "the schema is too large (over 1,000 rules)") }
            rules.append((unique, body))
            return unique
        }

        /// A JSON value as a GBNF literal that matches exactly its compact JSON text.
        private func literal(_ value: Any) throws(Unsupported) -> String {
            guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes]),
                  let text = String(data: data, encoding: .utf8) else {
                throw Unsupported(description: "'enum' and 'const' take JSON values")
            }
            return JSONGrammar.quoted(text) + " ws"
        }

        /// Rule names allow letters, digits and dashes.
        static func ruleName(_ text: String) -> String {
            let mapped = text.unicodeScalars.map { $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) ? Character($0) : "-" }
            return String(mapped.prefix(40))
        }
    }
}
