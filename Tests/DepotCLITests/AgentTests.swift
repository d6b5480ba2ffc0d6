import DepotTestSupport
import Foundation
import GGUF
import ModelStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `depot serve` end to end: real llama.cpp with tiny models, nginx as the CDN for catalog
/// pulls, curl, the `ollama` Python client and headless Chromium as clients.
@Suite(.serialized) struct AgentTests {
    /// Two installed tiny models, and a catalog (on nginx) with a third and a slow big one.
    struct Setup {
        let workspace = Workspace()
        let nginx: Nginx
        var catalog: String { nginx.url("catalog.json") }

        init() throws {
            let www = workspace.path + "/www"
            try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
            for (name, seed) in [("one", 1), ("two", 2)] {
                let file = try workspace.model("\(name).gguf", seed: UInt64(seed))
                let imported = try workspace.depot.run(["import", file, "--name", "tiny:\(name)"])
                guard imported.status == 0 else { throw DepotFailure(message: imported.stderr) }
            }
            try TinyModels.llama(seed: 3).write(to: www + "/three.gguf")
            try TinyModels.llama(seed: 4).write(to: www + "/huge.gguf")
            let big = try workspace.bigModel("www/big.gguf", megabytes: 24)
            // huge:x claims more memory than any test machine has; it is installed under that name below.
            let entries = [("tiny:three", www + "/three.gguf", "three.gguf", 1), ("big:slow", big, "slow/big.gguf", 1),
                           ("huge:x", www + "/huge.gguf", "huge.gguf", 64 << 20)]
            nginx = try Nginx(root: www)
            let models = try entries.map { id, path, served, memory in
                let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! UInt64
                return """
                    {"modelId": "\(id)", "displayName": "\(id)", "paramSize": 0.00004, "quantization": "F32", "fileSizeBytes": \(size),
                     "downloadUrl": "\(nginx.url(served))", "checksumSha256": "\(try sha256sum(path))", "platform": "all",
                     "languages": ["en"], "minMemoryMB": \(memory)}
                    """
            }
            try Data("{\"version\": 1, \"models\": [\(models.joined(separator: ","))]}".utf8)
                .write(to: URL(fileURLWithPath: www + "/catalog.json"))
            let huge = try workspace.depot.run(["import", www + "/huge.gguf", "--name", "huge:x"])
            guard huge.status == 0 else { throw DepotFailure(message: huge.stderr) }
        }

        /// `tiny:chat`, a tiny model with the ChatML template, which llama.cpp applies.
        /// What `tiny:tools` answers when nothing holds it to a grammar.
        static let toolCall = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>"

        /// `tiny:chat` (ChatML) and `tiny:tools` (ChatML with tool calls in the `<tool_call>`
        /// form; a scripted model that answers `toolCall`, with a context for the tools' text).
        func importChatModel() throws {
            var shape = TinyModels.LlamaShape()
            shape.chatTemplate = TinyModels.chatML
            let models = [("tiny:chat", TinyModels.llama(seed: 12, shape: shape)),
                          ("tiny:tools", TinyModels.scripted(reply: Self.toolCall, chatTemplate: TinyModels.chatMLWithTools))]
            for (name, writer) in models {
                let path = workspace.path + "/\(name.replacingOccurrences(of: ":", with: "-")).gguf"
                try writer.write(to: path)
                let imported = try workspace.depot.run(["import", path, "--name", name])
                guard imported.status == 0 else { throw DepotFailure(message: imported.stderr) }
            }
        }

        /// `tiny:embed`, whose GGUF names a pooling type.
        func importEmbeddingModel() throws {
            var shape = TinyModels.LlamaShape()
            shape.poolingType = 1
            let path = workspace.path + "/embed.gguf"
            try TinyModels.llama(seed: 21, shape: shape).write(to: path)
            let imported = try workspace.depot.run(["import", path, "--name", "tiny:embed"])
            guard imported.status == 0 else { throw DepotFailure(message: imported.stderr) }
        }

        func agent(_ arguments: [String] = []) throws -> AgentProcess {
            try AgentProcess(workspace, arguments: ["--catalog", catalog] + arguments)
        }

        func remove() {
            nginx.stop()
            workspace.remove()
        }
    }

    @Test func edgeCoderModelAPI() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }

        #expect(try agent.get("/model/status").object["state"] as? String == "idle")
        let first = try agent.post("/model/swap", #"{"model": "tiny:one"}"#)
        #expect(first.status == 200, "\(first.body)")
        #expect(first.object["status"] as? String == "ready" && first.object["active"] as? String == "tiny:one")
        #expect(first.object["previous"] is NSNull, "every field is present, null when unknown")
        let second = try agent.post("/model/swap", #"{"model": "tiny:two", "app": "com.example.chat"}"#)
        #expect(second.object["previous"] as? String == "tiny:one" && second.object["active"] as? String == "tiny:two")
        let status = try agent.get("/model/status").object
        #expect(status["activeModel"] as? String == "tiny:two" && status["state"] as? String == "ready")
        #expect(status["currentLoad"] as? Int == 0)

        #expect(try setup.workspace.depot.json(ModelEntry.self, ["show", "tiny:two"]).apps.map(\.app) == ["com.example.chat"],
                "the asking app's use is recorded")
        let list = try agent.get("/model/list").object
        let installed = (list["installed"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        let available = (list["available"] as? [[String: Any]] ?? []).compactMap { $0["modelId"] as? String }
        #expect(installed.sorted() == ["huge:x", "tiny:one", "tiny:two"])
        #expect(available.sorted() == ["big:slow", "tiny:three"])

        // Not installed but in the catalog: pulled, verified, then loaded.
        let pulling = try agent.post("/model/swap", #"{"model": "tiny:three"}"#)
        #expect(pulling.object["status"] as? String == "pulling", "\(pulling.body)")
        _ = try agent.wait(for: "/model/status") { $0["activeModel"] as? String == "tiny:three" && $0["state"] as? String == "ready" }
        let entry = try setup.workspace.depot.json(ModelEntry.self, ["show", "tiny:three"])
        #expect(entry.weights?.hashSource == .catalog)
        #expect(entry.apps.map(\.app) == ["depot.agent"], "activation records the use")

        // Bad input: clear errors, nothing changes.
        let tooBig = try agent.post("/model/swap", #"{"model": "huge:x"}"#)
        #expect(tooBig.status == 507 && (tooBig.object["error"] as? String)?.contains("memory") == true, "\(tooBig.body)")
        let unknown = try agent.post("/model/swap", #"{"model": "nope:x"}"#)
        #expect(unknown.status == 404 && (unknown.object["error"] as? String)?.contains("nope:x") == true)
        #expect(try agent.post("/model/swap", #"{"model": "../etc/passwd"}"#).status == 400)
        let malformed = try agent.post("/model/swap", #"{"model": "#)
        #expect(malformed.status == 400 && malformed.object["error"] != nil)
        let wrongType = try agent.post("/model/swap", #"{"model": 7}"#)
        #expect(wrongType.status == 400 && (wrongType.object["error"] as? String)?.contains("model") == true)
        let generateBad = try agent.post("/api/generate", #"{"model": "tiny:one", "options": {"temperature": "hot"}}"#)
        #expect(generateBad.status == 400 && (generateBad.object["error"] as? String)?.contains("temperature") == true)
        #expect(try agent.get("/model/status").object["activeModel"] as? String == "tiny:three")

        let metrics = try agent.get("/metrics").body
        #expect(metrics.contains("depot_swaps_total{result=\"success\"} 3"))
        #expect(metrics.contains("depot_runtime_state{state=\"ready\"} 1"))
        #expect(metrics.contains("depot_downloads_total{result=\"success\"} 1"))

        // Hostile or odd Ollama input: a clear 400 and the server stays up.
        #expect(try agent.post("/api/generate", #"{"model": "tiny:one", "keep_alive": 1e19}"#).status == 400)
        #expect(try agent.post("/api/generate", #"{"model": "tiny:one", "keep_alive": "nan"}"#).status == 400)
        #expect(try agent.get("/model/status").status == 200, "still serving")
        // keep_alive 0 loads, answers, then unloads (it does not unload before answering).
        let once = try agent.post("/api/generate", #"{"model": "tiny:one", "prompt": "hello", "stream": false, "keep_alive": 0, "options": {"num_predict": 3}}"#)
        #expect(once.status == 200 && once.object["done"] as? Bool == true, "\(once.body)")
        _ = try agent.wait(for: "/model/status") { $0["activeModel"] is NSNull }
        // A swap that needs a pull loads its model only if no later swap asked for another.
        let failuresBefore = try agent.get("/metrics").body.split(separator: "\n").first { $0.hasPrefix("depot_swaps_total{result=\"failure\"}") }
        #expect(try agent.post("/model/swap", #"{"model": "big:slow"}"#).object["status"] as? String == "pulling")
        #expect(try agent.post("/model/swap", #"{"model": "tiny:two"}"#).object["status"] as? String == "ready")
        _ = try agent.wait(for: "/model/list") { list in
            (list["installed"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "big:slow" }
        }
        usleep(500_000)
        #expect(try agent.get("/model/status").object["activeModel"] as? String == "tiny:two")
        let failuresAfter = try agent.get("/metrics").body.split(separator: "\n").first { $0.hasPrefix("depot_swaps_total{result=\"failure\"}") }
        #expect(failuresBefore == failuresAfter, "the finished pull did not try to load over the later swap")
        // Copying onto an existing name never replaces it (it could be another app's model).
        let twoBefore = try setup.workspace.depot.json(ModelEntry.self, ["show", "tiny:two"])
        #expect(try agent.post("/api/copy", #"{"source": "tiny:one", "destination": "tiny:two"}"#).status == 409)
        let twoAfter = try setup.workspace.depot.json(ModelEntry.self, ["show", "tiny:two"])
        #expect(twoAfter.weights?.sha256 == twoBefore.weights?.sha256 && twoAfter.apps.map(\.app) == twoBefore.apps.map(\.app))
    }

    @Test func theOllamaPythonClientWorksUnchanged() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let check = try run(["python3", fixture("ollama_check.py"), agent.base, "tiny:one", "tiny:three"])
        #expect(check.status == 0, "\(check.stderr)")
    }

    /// What Ollama's clients send besides the happy path: HEAD health checks, a name without
    /// its tag, keep_alive as Go formats a duration, and no num_predict (Ollama: no limit).
    @Test func ollamaHealthChecksNamesAndDurationsAsClientsSendThem() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let file = try setup.workspace.model("latest.gguf", seed: 9)
        #expect(try setup.workspace.depot.run(["import", file, "--name", "tiny:latest"]).status == 0)
        let agent = try setup.agent()
        defer { agent.stop() }
        for path in ["/", "/api/version", "/api/tags"] {
            #expect(try agent.request("HEAD", path).status == 200, "HEAD \(path)")
        }
        #expect(try agent.post("/api/show", #"{"model": "tiny"}"#).status == 200, "tiny is tiny:latest")
        #expect(try agent.post("/api/show", #"{"model": "tiny:nope"}"#).status == 404)
        #expect(try agent.post("/api/show", #"{"model": "one"}"#).status == 404, "no one:latest, and tiny:one is not 'one'")

        for (given, seconds) in [(#""10m0s""#, 600.0), (#""1h30m""#, 5_400), (#""1m30.5s""#, 90.5), (#""300""#, 300), ("90", 90)] {
            let reply = try agent.post("/api/generate", #"{"model": "tiny", "prompt": "", "keep_alive": \#(given)}"#)
            #expect(reply.status == 200, "keep_alive \(given): \(reply.body)")
            let running = try #require((try agent.get("/api/ps").object["models"] as? [[String: Any]])?.first)
            let expires = try #require((running["expires_at"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) })
            #expect(abs(expires.timeIntervalSinceNow - seconds) < 5, "keep_alive \(given) expires in \(expires.timeIntervalSinceNow) s")
        }
        for bad in [#""10 minutes""#, #""5x""#, #""1h-5m""#, #""m""#] {
            let reply = try agent.post("/api/generate", #"{"model": "tiny", "prompt": "", "keep_alive": \#(bad)}"#)
            #expect(reply.status == 400 && reply.body.contains("keep_alive"), "\(bad): \(reply.status) \(reply.body)")
        }
        // No num_predict: the answer ends when the model stops or the context is full, not at 128 tokens.
        let answer = try agent.post("/api/generate", #"{"model": "tiny", "prompt": "hello", "stream": false, "options": {"seed": 3}}"#).object
        #expect(answer["done_reason"] as? String == "stop" || (answer["eval_count"] as? Int ?? 0) > 128, "\(answer)")

        // Names under a namespace (and a host), as Ollama's; never one that walks up a directory.
        #expect(try agent.post("/api/copy", #"{"source": "tiny", "destination": "myns/tiny:latest"}"#).status == 200)
        #expect(try agent.post("/api/copy", #"{"source": "tiny", "destination": "hf.co/owner/repo:q8_0"}"#).status == 200)
        #expect(try agent.post("/api/show", #"{"model": "myns/tiny"}"#).status == 200, "myns/tiny is myns/tiny:latest")
        let tags = (try agent.get("/api/tags").object["models"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(tags.contains("myns/tiny:latest") && tags.contains("hf.co/owner/repo:q8_0"), "\(tags)")
        #expect(try agent.post("/api/generate", #"{"model": "myns/tiny", "prompt": "hi", "stream": false, "options": {"num_predict": 2}}"#).status == 200)
        #expect(try agent.get("/v1/models/hf.co/owner/repo:q8_0").status == 200)
        for bad in ["../evil:x", "ns/../x:y", "/abs:x", "a//b:c", "a/b/c/d:e"] {
            let refused = try agent.post("/api/copy", #"{"source": "tiny", "destination": "\#(bad)"}"#)
            #expect(refused.status == 400, "\(bad): \(refused.status) \(refused.body)")
        }
    }

    /// `suffix` fills in the middle by the model's FIM tokens; a model without them says so.
    @Test func aSuffixFillsInTheMiddleWithTheModelsFIMTokens() throws {
        let setup = try Setup()
        defer { setup.remove() }
        var writer = TinyModels.llama(seed: 13)
        for (key, id) in [("pre", 3), ("suf", 4), ("mid", 5)] { writer.set("tokenizer.ggml.fim_\(key)_token_id", .uint32(UInt32(id))) }
        let path = setup.workspace.path + "/fim.gguf"
        try writer.write(to: path)
        #expect(try setup.workspace.depot.run(["import", path, "--name", "tiny:fim"]).status == 0)
        let agent = try setup.agent()
        defer { agent.stop() }
        let capabilities = { (model: String) in try agent.post("/api/show", #"{"model": "\#(model)"}"#).object["capabilities"] as? [String] ?? [] }
        #expect(try capabilities("tiny:fim").contains("insert") && !capabilities("tiny:one").contains("insert"))
        func generate(_ model: String, suffix: String?) throws -> AgentProcess.Reply {
            let suffixField = suffix.map { #", "suffix": "\#($0)""# } ?? ""
            return try agent.post("/api/generate", #"{"model": "\#(model)", "prompt": "def f(x):", "raw": true, "stream": false\#(suffixField), "options": {"num_predict": 4, "temperature": 0}}"#)
        }
        let plain = try generate("tiny:fim", suffix: nil).object
        let filled = try generate("tiny:fim", suffix: "    return x")
        let suffixTokens = "    return x".utf8.count
        #expect(filled.status == 200, "\(filled.body)")
        // Prefix, suffix and the three FIM tokens: the suffix's bytes (a byte-level vocabulary) and three more.
        #expect((filled.object["prompt_eval_count"] as? Int ?? 0) >= (plain["prompt_eval_count"] as? Int ?? 0) + suffixTokens / 2 + 3,
                "\(filled.body) against \(plain)")
        #expect(filled.object["response"] as? String != plain["response"] as? String || plain["response"] as? String == "",
                "the suffix changes what comes")
        let refused = try generate("tiny:one", suffix: "    return x")
        #expect(refused.status == 400 && refused.body.contains("fill-in-the-middle"), "\(refused.status) \(refused.body)")
    }

    /// Every option Ollama's clients send is honoured, taken as a hint that cannot change the
    /// answer, or refused with a 400 naming it.
    @Test func everyOllamaOptionIsHonouredOrRefusedByName() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent(["--context-length", "256"])
        defer { agent.stop() }
        func generate(_ options: String) throws -> AgentProcess.Reply {
            try agent.post("/api/generate", #"{"model": "tiny:one", "prompt": "hello", "stream": false, "options": \#(options)}"#)
        }
        // /api/show says what a request gets: the context here, and the model's end-of-turn text.
        let parameters = try agent.post("/api/show", #"{"model": "tiny:one"}"#).object["parameters"] as? String ?? ""
        #expect(parameters.split(separator: "\n").first == "num_ctx 256" && parameters.contains("stop \""), "\(parameters)")
        // num_ctx bounds the prompt and the answer together, within the agent's context.
        let bounded = try generate(#"{"num_ctx": 24, "temperature": 0}"#).object
        let used = (bounded["prompt_eval_count"] as? Int ?? 99) + (bounded["eval_count"] as? Int ?? 99)
        #expect(used <= 24 && bounded["done_reason"] as? String == "length", "\(bounded)")
        let unbounded = try generate(#"{"temperature": 0, "num_predict": 40}"#).object
        #expect(unbounded["eval_count"] as? Int ?? 0 > bounded["eval_count"] as? Int ?? 0, "\(unbounded)")
        let tooLarge = try generate(#"{"num_ctx": 8192}"#)
        #expect(tooLarge.status == 400 && tooLarge.body.contains("num_ctx") && tooLarge.body.contains("256"), "\(tooLarge.body)")
        // Samplers llama.cpp has: each changes sampled answers (over a few seeds, as one may
        // end at once).
        func answers(_ extra: String) throws -> [String] {
            try (1...5).map { seed in
                let reply = try generate(#"{"temperature": 1, "seed": \#(seed), "num_predict": 24\#(extra)}"#)
                #expect(reply.status == 200, "\(extra): \(reply.body)")
                return reply.object["response"] as? String ?? ""
            }
        }
        let plain = try answers("")
        for sampler in [#", "min_p": 0.9"#, #", "typical_p": 0.2"#, #", "mirostat": 2, "mirostat_tau": 1"#] {
            #expect(try answers(sampler) != plain, "\(sampler)")
        }
        // Hardware hints are taken and change nothing.
        #expect(try answers(#", "num_thread": 1, "num_gpu": 0, "use_mmap": true, "tfs_z": 1"#) == plain)
        for (options, named) in [(#"{"tfs_z": 0.5}"#, "tfs_z"), (#"{"frobnicate": 1}"#, "frobnicate"), (#"{"mirostat": 3}"#, "mirostat"),
                                 (#"{"min_p": 2}"#, "min_p"), (#"{"num_ctx": 0}"#, "num_ctx")] {
            let refused = try generate(options)
            #expect(refused.status == 400 && refused.body.contains(named), "\(options): \(refused.status) \(refused.body)")
        }
    }

    @Test func theOllamaPythonClientChatsThroughTheModelsTemplate() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.importChatModel()
        let agent = try setup.agent()
        defer { agent.stop() }
        let check = try run(["python3", fixture("ollama_chat_check.py"), agent.base, "tiny:chat", "tiny:one", "tiny:tools"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
        // What the client will not send: a format that is neither "json" nor a schema.
        let yaml = try agent.post("/api/chat", #"{"model": "tiny:chat", "messages": [{"role": "user", "content": "hi"}], "format": "yaml"}"#)
        #expect(yaml.status == 400 && yaml.body.contains("format") && yaml.body.contains("yaml"), "\(yaml.status) \(yaml.body)")
    }

    @Test func theOpenAIPythonClientWorksAgainstV1() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.importChatModel()
        let agent = try setup.agent(["--token", "sk-depot-test"])
        defer { agent.stop() }
        let check = try run(["python3", fixture("openai_check.py"), agent.base, "tiny:chat", "tiny:one", "sk-depot-test", "tiny:tools"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
    }

    @Test func embeddingsForOllamaAndOpenAIClients() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.importEmbeddingModel()
        let agent = try setup.agent()
        defer { agent.stop() }
        let check = try run(["python3", fixture("embed_check.py"), agent.base, "tiny:embed", "tiny:one"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
    }

    /// The scripted model (one-hot embeddings, zero blocks) answers its script through real
    /// inference, streamed and not: what the web UI's chat test relies on.
    @Test func aScriptedModelAnswersItsScript() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let reply = "<script>window.__xss = 1</script>"
        try TinyModels.scripted(reply: reply).write(to: setup.workspace.path + "/scripted.gguf")
        #expect(try setup.workspace.depot.run(["import", setup.workspace.path + "/scripted.gguf", "--name", "tiny:scripted"]).status == 0)
        let agent = try setup.agent()
        defer { agent.stop() }
        let chat = try agent.post("/api/chat", #"{"model": "tiny:scripted", "messages": [{"role": "user", "content": "hi"}], "stream": false}"#)
        #expect((chat.object["message"] as? [String: Any])?["content"] as? String == reply && chat.object["done_reason"] as? String == "stop",
                "\(chat.body)")
        let streamed = try agent.post("/api/chat", #"{"model": "tiny:scripted", "messages": [{"role": "user", "content": "hello"}]}"#)
        let text = streamed.body.split(separator: "\n").compactMap { line in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]).flatMap { ($0["message"] as? [String: Any])?["content"] as? String }
        }.joined()
        #expect(text == reply, "\(streamed.body)")
    }

    @Test func langChainsOllamaIntegrationWorksUnchanged() throws {
        let setup = try Setup()
        defer { setup.remove() }
        try setup.importChatModel()
        try setup.importEmbeddingModel()
        let agent = try setup.agent()
        defer { agent.stop() }
        let check = try run(["python3", fixture("langchain_check.py"), agent.base, "tiny:chat", "tiny:tools", "tiny:embed"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
    }

    @Test func theWebUIAsksForTheTokenOnceAndKeepsIt() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent(["--token", "ui-s3cret-token"])
        defer { agent.stop() }
        let check = try run(["python3", fixture("ui_token_check.py"), agent.base, "ui-s3cret-token", "tiny:one"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
    }

    @Test func theWebUIInHeadlessChromium() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let artifacts = try testArtifacts()
        let check = try run(["python3", fixture("ui_check.py"), agent.base, artifacts + "/web-ui.png", "tiny:one", "tiny:two", "tiny:three"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
        #expect(FileManager.default.fileExists(atPath: artifacts + "/web-ui.png"))
    }

    /// The chat panel streams the active model's answer as text (a scripted model answers
    /// with a script tag, the message carries HTML), the import panel adopts a model from
    /// this machine's Ollama store, and the page fits a phone's width.
    @Test func theWebUIChatsSafelyImportsAndFitsAPhone() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let reply = "<script>window.__xss = 1</script>"
        try TinyModels.scripted(reply: reply).write(to: setup.workspace.path + "/scripted.gguf")
        #expect(try setup.workspace.depot.run(["import", setup.workspace.path + "/scripted.gguf", "--name", "tiny:scripted"]).status == 0)
        let ollama = setup.workspace.path + "/ollama"
        let weights = try MovingInTests.blob(TinyModels.llama(seed: 71), in: ollama + "/blobs", prefix: "sha256-")
        try MovingInTests.manifest(ollama, "registry.ollama.ai/library/found/latest", layers: [("model", weights)])
        let agent = try AgentProcess(setup.workspace, arguments: ["--catalog", setup.catalog],
                                     environment: ["OLLAMA_MODELS": ollama, "HF_HUB_CACHE": setup.workspace.path + "/no-hub"])
        defer { agent.stop() }
        let caches = try agent.get("/store/caches").object["caches"] as? [[String: Any]] ?? []
        #expect(caches.count == 1 && (caches.first?["found"] as? [Any])?.count == 1, "\(caches)")
        let artifacts = try testArtifacts()
        let check = try run(["python3", fixture("ui_chat_check.py"), agent.base, artifacts, "tiny:scripted", reply, "found:latest"])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
        #expect(FileManager.default.fileExists(atPath: artifacts + "/chat.png") && FileManager.default.fileExists(atPath: artifacts + "/phone.png"))
        // Only the two caches are read: a name that is not in them is a 404, whatever it says.
        let outside = try agent.post("/store/adopt", #"{"origin": "ollama", "name": "../../etc/passwd"}"#)
        #expect(outside.status == 404, "\(outside.body)")
    }

    /// The downloads panel pauses, resumes and cancels a pull another app started; the storage
    /// panel shows the store against its disk and prunes it to a budget once confirmed.
    @Test func theWebUIControlsDownloadsAndStorage() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let artifacts = try testArtifacts()
        // nginx's /trickle/ sends 96 KB/s a connection: the 24 MB pull lasts minutes.
        let big = setup.workspace.path + "/www/big.gguf"
        let job = #"{"source": "\#(setup.nginx.url("trickle/big.gguf"))", "name": "big:trickle", "sha256": "\#(try sha256sum(big))"}"#
        let check = try run(["python3", fixture("ui_storage_check.py"), agent.base, artifacts, job])
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
        #expect(try setup.workspace.depot.json([ModelEntry].self, ["list"]).map(\.name) == ["demo:tiny"],
                "the confirmed plan removed every model, and the demo model came in")
        #expect(try setup.workspace.depot.run(["jobs"]).stdout.contains("No downloads"))
        // A plan that changed since it was shown is not carried out.
        let stale = try agent.post("/store/prune", #"{"maxBytes": 0, "dryRun": false, "expect": ["tiny:one"]}"#)
        #expect(stale.status == 409, "\(stale.body)")
    }

    /// Pause and resume clicked in quick succession: the job runs again, and says so.
    @Test func aJobResumedRightAfterItsPauseRunsAgain() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let big = setup.workspace.path + "/www/big.gguf"
        let started = try agent.post("/jobs", #"{"source": "\#(setup.nginx.url("trickle/big.gguf"))", "name": "big:trickle", "sha256": "\#(try sha256sum(big))"}"#)
        let id = try #require(started.object["id"] as? String)
        func job() throws -> [String: Any] {
            (try JSONSerialization.jsonObject(with: Data(agent.get("/jobs").body.utf8)) as? [[String: Any]] ?? []).first { $0["id"] as? String == id } ?? [:]
        }
        for round in 1...3 {
            #expect(try agent.post("/jobs/\(id)/pause", "").status == 200)
            #expect(try agent.post("/jobs/\(id)/resume", "").status == 202)
            let before = try job()["completedBytes"] as? Int ?? 0
            try waitUntil(timeout: 20) { let now = try job(); return now["state"] as? String == "running" && now["completedBytes"] as? Int ?? 0 > before }
            #expect(try job()["state"] as? String == "running", "round \(round)")
        }
        _ = try agent.request("DELETE", "/jobs/\(id)")
    }

    @Test func jobsSurviveAGracefulShutdownAndResume() throws {
        let setup = try Setup()
        defer { setup.remove() }
        // One connection at nginx's 4 MB/s: the 24 MB download takes about six seconds.
        var agent = try setup.agent(["--connections", "1"])
        defer { agent.stop() }
        let events = try Process.run(URL(fileURLWithPath: "/usr/bin/curl"), arguments: ["-s", "-N", "--max-time", "4", "-o",
                                                                                          setup.workspace.path + "/events.txt", agent.base + "/events"])
        let submitted = try agent.post("/jobs", #"{"model": "big:slow"}"#)
        #expect(submitted.status == 202, "\(submitted.body)")
        let id = try #require(submitted.object["id"] as? String)
        _ = try agent.wait(for: "/model/status") { (($0["pull"] as? [String: Any])?["completedBytes"] as? Int ?? 0) > 0 }
        events.waitUntilExit()
        let stream = (try? String(contentsOfFile: setup.workspace.path + "/events.txt", encoding: .utf8)) ?? ""
        #expect(stream.contains("event: model") && stream.contains("event: job"), "\(stream.prefix(500))")

        // An open event stream (a web UI page) must not hold up a graceful stop.
        let listener = try Process.run(URL(fileURLWithPath: "/usr/bin/curl"), arguments: ["-s", "-N", "--max-time", "60", "-o", "/dev/null",
                                                                                            agent.base + "/events"])
        defer { listener.terminate() }
        usleep(300_000)
        kill(agent.running.process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(15)
        while agent.running.process.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!agent.running.process.isRunning, "SIGTERM stops the agent despite an open event stream")
        let stopped = agent.terminate()
        #expect(stopped.status == 0, "SIGTERM stops it cleanly: \(stopped.stderr)")
        let jobs = try setup.workspace.depot.run(["jobs"])
        #expect(jobs.stdout.contains("paused"), "the download is paused, not lost: \(jobs.stdout)")

        agent = try setup.agent(["--connections", "1"])
        #expect(try agent.post("/jobs/\(id)/resume", "{}").status == 202)
        _ = try agent.wait(for: "/model/list") { list in
            (list["installed"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "big:slow" }
        }
        #expect(try setup.workspace.depot.run(["jobs"]).stdout.contains("No downloads"))

        // Cancel keeps nothing; an unknown job is a 404.
        let again = try agent.post("/jobs", #"{"source": "\#(setup.nginx.url("slow/big.gguf"))", "name": "copy:slow"}"#)
        let againID = try #require(again.object["id"] as? String)
        #expect(try agent.request("DELETE", "/jobs/\(againID)").status == 200)
        #expect(setup.workspace.files(in: "tmp").filter { $0.hasSuffix(".partial") }.isEmpty)
        #expect(try agent.request("DELETE", "/jobs/nosuchjob").status == 404)
        #expect(try agent.post("/jobs", #"{"model": "nope:x"}"#).status == 404)
        #expect(try agent.post("/jobs", #"{"source": "ftp://x/y.gguf"}"#).status == 400)
    }

    @Test func offLoopbackATokenIsRequired() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let refused = try setup.workspace.depot.run(["serve", "--host", "0.0.0.0", "--port", "0"])
        #expect(refused.status == 2 && refused.stderr.contains("--token"))
        let badKey = try setup.workspace.depot.run(["serve", "--port", "0", "--catalog-key", "typo"])
        #expect(badKey.status == 2 && badKey.stderr.contains("Ed25519"), "a bad catalog key is refused, not ignored")
        let agent = try setup.agent(["--host", "0.0.0.0", "--token", "s3cret"])
        defer { agent.stop() }
        #expect(try agent.get("/model/status").status == 401, "reading needs the token too")
        #expect(try agent.request("GET", "/model/status", headers: ["Authorization: Bearer s3cret"]).status == 200)
        #expect(try agent.post("/model/swap", #"{"model": "tiny:one"}"#).status == 401)
        #expect(try agent.post("/model/swap", #"{"model": "tiny:one"}"#, headers: ["Authorization: Bearer wrong"]).status == 401)
        #expect(try agent.post("/model/swap", #"{"model": "tiny:one"}"#, headers: ["Authorization: Bearer s3cret"]).status == 200)
    }

    func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/\(name)").standardized.path
    }

    func run(_ command: [String]) throws -> DepotProcess.Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let out = try OutputFile(), err = try OutputFile()
        process.standardOutput = out.handle
        process.standardError = err.handle
        try process.run()
        process.waitUntilExit()
        return DepotProcess.Outcome(status: process.terminationStatus, stdout: out.contents(), stderr: err.contents())
    }
}
