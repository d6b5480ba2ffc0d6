import Foundation
import ModelRuntime

/// Tool calling for models whose chat template defines it the way Qwen 2.5 and 3, Hermes and
/// their fine-tunes do (the template mentions `<tool_call>`): the tools are described in the
/// system message as JSON inside `<tools>`, the model answers a call as
/// `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, and results go back inside
/// `<tool_response>` in a user turn. llama.cpp's built-in templates know no tools, so the
/// messages are rewritten here into ones the template does know; a model whose template
/// defines no tool calls gets a 400 naming it.
struct ToolCalling: Sendable {
    static let callStart = "<tool_call>", callEnd = "</tool_call>"

    /// A function the model may call: its name and its definition as compact JSON.
    struct Tool: Sendable {
        var name: String
        var definition: String
        /// The JSON schema of its arguments, compact, if given.
        var parameters: String?
    }

    /// A call in an answer, or in an earlier assistant message.
    struct Call: Sendable, Equatable {
        var name: String
        /// A JSON object, compact.
        var arguments: String
    }

    /// A message of the conversation, with the calls an assistant message made.
    struct Message {
        var role: String
        var content: String
        var calls: [Call] = []
    }

    let tools: [Tool]

    /// Tools for `model`, whose chat template is `template`; nil for none.
    init?(_ tools: [Tool], model: String, template: String?) throws {
        guard !tools.isEmpty else { return nil }
        guard let template, Self.definesCalls(template) else {
            throw AgentError.badRequest("'\(model)' cannot call tools: its chat template defines no tool calls (only templates in the <tool_call> form, as Qwen's and Hermes', are supported)")
        }
        for (index, tool) in tools.enumerated() where tool.name.isEmpty || tools[..<index].contains(where: { $0.name == tool.name }) {
            throw AgentError.badRequest("tools.\(index): every tool needs a name of its own")
        }
        self.tools = tools
    }

    static func definesCalls(_ template: String) -> Bool { template.contains(callStart) }

    /// The tool a definition (`{"type": "function", "function": {"name", "description",
    /// "parameters"}}`, as Ollama and OpenAI send it) describes.
    static func tool(_ definition: FreeJSON, index: Int) throws -> Tool {
        guard let object = definition.value as? [String: Any], (object["type"] as? String ?? "function") == "function",
              let function = object["function"] as? [String: Any], let name = function["name"] as? String else {
            throw AgentError.badRequest("tools.\(index): a tool is {\"type\": \"function\", \"function\": {\"name\": …, \"parameters\": {…}}}")
        }
        let parameters = function["parameters"].map(compact)
        return Tool(name: name, definition: compact(["type": "function", "function": function]), parameters: parameters)
    }

    /// The conversation as the template's model was trained to read it: the tools after the
    /// system message, earlier calls inside the assistant's turns, results as user turns.
    func render(_ messages: [Message]) -> [ChatMessage] {
        let described = """
            # Tools

            You may call one or more functions to assist with the user query.

            You are provided with function signatures within <tools></tools> XML tags:
            <tools>
            \(tools.map(\.definition).joined(separator: "\n"))
            </tools>

            For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
            <tool_call>
            {"name": <function-name>, "arguments": <args-json-object>}
            </tool_call>
            """
        var rendered: [ChatMessage] = []
        var rest = messages[...]
        if let first = rest.first, first.role == "system" {
            rendered.append(ChatMessage(role: "system", content: first.content + "\n\n" + described))
            rest = rest.dropFirst()
        } else {
            rendered.append(ChatMessage(role: "system", content: described))
        }
        for message in rest {
            switch message.role {
            case "tool":
                let response = "<tool_response>\n\(message.content)\n</tool_response>"
                // Results of one turn's calls go back together, in one user turn.
                if let last = rendered.last, last.role == "user", last.content.hasSuffix("</tool_response>") {
                    rendered[rendered.count - 1].content += "\n" + response
                } else {
                    rendered.append(ChatMessage(role: "user", content: response))
                }
            case "assistant" where !message.calls.isEmpty:
                let calls = message.calls.map { "\(Self.callStart)\n{\"name\": \(Self.compact($0.name)), \"arguments\": \($0.arguments)}\n\(Self.callEnd)" }
                rendered.append(ChatMessage(role: "assistant", content: ([message.content].filter { !$0.isEmpty } + calls).joined(separator: "\n")))
            default:
                rendered.append(ChatMessage(role: message.role, content: message.content))
            }
        }
        return rendered
    }

    /// The grammar that makes the answer one call of the tool named `name` (any of them when
    /// nil), with arguments that fit its schema.
    func grammar(calling name: String?) throws -> String {
        let chosen = name.map { name in tools.filter { $0.name == name } } ?? tools
        guard !chosen.isEmpty else { throw AgentError.badRequest("'tool_choice' names '\(name ?? "")', which is not among the tools") }
        let calls: [[String: Any]] = chosen.map { tool in
            let anyObject: Any = ["type": "object"]
            let arguments: Any = tool.parameters.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? anyObject
            let properties: [String: Any] = ["name": ["const": tool.name], "arguments": arguments]
            return ["type": "object", "required": ["name", "arguments"], "properties": properties]
        }
        let schema: Any = calls.count == 1 ? calls[0] : ["anyOf": calls] as [String: Any]
        do {
            return try JSONGrammar.gbnf(schema: schema, between: Self.callStart + "\n", and: "\n" + Self.callEnd)
        } catch {
            throw AgentError.badRequest("the tools' parameters cannot be held to: \(error.description)")
        }
    }

    static func compact(_ value: Any) -> String {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

/// An answer's text as it streams, with the tool calls taken out: text that may be the start
/// of a call is held back until it is one (and the call closes) or is not. A call whose JSON
/// does not parse stays text. Feeding a whole answer and finishing gives the same text and
/// calls as streaming it piece by piece.
final class ToolCallStream: @unchecked Sendable {
    // Guarded by `lock`.
    private var held = ""
    private let lock = NSLock()

    /// The calls in a whole answer, and its text without them.
    func all(_ answer: String) -> (text: String, calls: [ToolCalling.Call]) {
        let (text, calls) = feed(answer)
        let (rest, last) = finish()
        return (text + rest, calls + last)
    }

    /// The text that can go out now, and the calls completed.
    func feed(_ piece: String) -> (text: String, calls: [ToolCalling.Call]) {
        lock.withLock { take(piece) }
    }

    private func take(_ piece: String) -> (text: String, calls: [ToolCalling.Call]) {
        held += piece
        var text = "", calls: [ToolCalling.Call] = []
        while true {
            guard let start = held.range(of: ToolCalling.callStart) else {
                // Hold back an ending that may grow into a call's start.
                let keep = (1..<ToolCalling.callStart.count).reversed().first { held.hasSuffix(ToolCalling.callStart.prefix($0)) } ?? 0
                text += held.dropLast(keep)
                held = String(held.suffix(keep))
                return (text, calls)
            }
            guard let end = held.range(of: ToolCalling.callEnd, range: start.upperBound..<held.endIndex) else {
                text += held[..<start.lowerBound]
                held = String(held[start.lowerBound...])
                return (text, calls)
            }
            text += held[..<start.lowerBound]
            if let call = Self.call(held[start.upperBound..<end.lowerBound]) {
                calls.append(call)
            } else {
                text += held[start.lowerBound..<end.upperBound]
            }
            held = String(held[end.upperBound...])
        }
    }

    /// The rest once the answer is complete: a call the model did not close still counts
    /// when its JSON is whole.
    func finish() -> (text: String, calls: [ToolCalling.Call]) {
        lock.withLock {
            defer { held = "" }
            if held.hasPrefix(ToolCalling.callStart), let call = Self.call(held.dropFirst(ToolCalling.callStart.count)) {
                return ("", [call])
            }
            return (held, [])
        }
    }

    /// `{"name": …, "arguments": {…}}` (arguments may be missing: none).
    static func call(_ json: Substring) -> ToolCalling.Call? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let name = object["name"] as? String else { return nil }
        let arguments = object["arguments"] ?? object["parameters"] ?? [String: Any]()
        guard arguments is [String: Any] else { return nil }
        return ToolCalling.Call(name: name, arguments: ToolCalling.compact(arguments))
    }
}
