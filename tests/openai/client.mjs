// The official `openai` npm client against ringgate's OpenAI-compatible API: list the models,
// stream a completion from the echo agent, ask for one without streaming, create a response
// (whole and streamed), and fail with a wrong key. Prints one JSON report on stdout.
//
// Usage: node client.mjs <baseURL> <token>
import OpenAI from "openai";

const [baseURL, token] = process.argv.slice(2);
const report = { models: [], model: null, streamed: "", chunks: 0, finish: null, usage: null,
  whole: null, wrongKey: null, response: null, responseStreamed: "", responseEvents: [],
  responseCompleted: null, errors: [] };
const client = new OpenAI({ baseURL, apiKey: token, maxRetries: 0 });

try {
  const list = await client.models.list();
  for await (const m of list) report.models.push(m.id);
  report.model = await client.models.retrieve("openclaw/main");

  const stream = await client.chat.completions.create({
    model: "openclaw/main",
    messages: [{ role: "user", content: "hello from the openai client" }],
    stream: true,
    stream_options: { include_usage: true },
    user: "SDK-User",
  });
  for await (const chunk of stream) {
    report.chunks += 1;
    if (chunk.usage) report.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    report.streamed += choice.delta?.content ?? "";
    if (choice.finish_reason) report.finish = choice.finish_reason;
  }

  report.whole = await client.chat.completions.create({
    model: "openclaw",
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: "once more" },
    ],
  });

  report.response = await client.responses.create({
    model: "openclaw/main",
    instructions: "answer plainly",
    input: "what do responses say",
  });
  const events = await client.responses.create({
    model: "openclaw",
    input: [{ role: "user", content: [{ type: "input_text", text: "stream a response" }] }],
    stream: true,
  });
  for await (const ev of events) {
    report.responseEvents.push(ev.type);
    if (ev.type === "response.output_text.delta") report.responseStreamed += ev.delta;
    if (ev.type === "response.completed") report.responseCompleted = ev.response;
  }

  const wrong = new OpenAI({ baseURL, apiKey: "not-the-token", maxRetries: 0 });
  try {
    await wrong.models.list();
    report.wrongKey = "accepted";
  } catch (e) {
    report.wrongKey = { name: e.constructor.name, status: e.status, error: e.error ?? null };
  }
} catch (e) {
  report.errors.push(String(e?.stack ?? e));
}
process.stdout.write(JSON.stringify(report) + "\n");
