#!/usr/bin/env python3
"""A mock OpenAI-compatible model for the agent-turn benchmark (tools/bench/agent_turns.sh).

POST /v1/chat/completions, streamed (SSE). Every user turn costs two model calls: while no
tool result follows the newest user message it asks for the `read` tool on `hello.txt`; then
it answers `The file says: <tool result>`. So ringgate's `openclaw-worker` agent and the
original's in-process agent do the same work per turn: two model calls and one tool run.
Usage: mock_model.py PORT
"""
import http.server
import json
import os
import sys

LOG = os.environ.get("MOCK_LOG") == "1"


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: each answer ends with the connection (no keep-alive state to get wrong).
    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(n))
        msgs = body.get("messages", [])
        # The original adds user-role context blocks after the user's message; only the
        # user's own messages start a turn.
        def real_user(m):
            return m.get("role") == "user" and "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>" not in json.dumps(m.get("content"))

        last_user = max((i for i, m in enumerate(msgs) if real_user(m)), default=-1)
        tools = [m for m in msgs[last_user + 1:] if m.get("role") == "tool"]
        if LOG:
            sys.stderr.write("%s %d\n" % ("answer" if tools else "tool-call", n))
            sys.stderr.flush()
        chunks = []
        if not tools:
            chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "read", "arguments": ""}}]}}]})
            chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":\"hello.txt\"}"}}]}}]})
            chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
        else:
            content = tools[-1].get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content)
            text = "The file says: " + str(content).strip()
            for i in range(0, len(text), 8):
                chunks.append({"choices": [{"index": 0, "delta": {"content": text[i:i + 8]}}]})
            chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 20, "completion_tokens": 7}})
        out = "".join("data: %s\n\n" % json.dumps(c) for c in chunks) + "data: [DONE]\n\n"
        data = out.encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(data)


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
