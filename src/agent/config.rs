//! Agent configuration: which runtime answers each agent (`ringgate.agents` in the config
//! file). Without any entry there is one agent, `main`, answered by the echo runtime, so a
//! fresh `make run` can hold a conversation with no model provider.

use serde_json::Value;

use crate::config::ConfigError;

/// Default delay between two echo chunks.
pub const DEFAULT_ECHO_DELAY_MS: u64 = 40;
/// Default characters per echo chunk.
pub const DEFAULT_ECHO_CHUNK: usize = 8;
/// Default whole-turn deadline of a provider call.
pub const DEFAULT_PROVIDER_TIMEOUT_MS: u64 = 120_000;

/// One configured agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub id: String,
    pub runtime: RuntimeConfig,
}

/// The runtime behind an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeConfig {
    /// Deterministic development agent: replies `echo: <message>` in chunks.
    Echo { delay_ms: u64, chunk_chars: usize },
    /// Any OpenAI-compatible `/v1/chat/completions` endpoint, streamed.
    OpenAi(OpenAiConfig),
    /// The original's agent loop (`openclaw worker`) with its tools, on ringgate's worker
    /// channel; ringgate does the model calls through `provider`.
    Worker(Box<WorkerConfig>),
}

/// Tools a worker agent gets when its config names none: the file tools, no `exec`.
pub const DEFAULT_WORKER_TOOLS: [&str; 4] = ["read", "write", "edit", "apply_patch"];

/// Tools the worker runs locally (the original's closed list in worker mode).
pub const WORKER_TOOLS: [&str; 6] = ["read", "write", "edit", "apply_patch", "exec", "process"];

/// Default limits of the worker pool.
pub const DEFAULT_MAX_WORKERS: u64 = 2;
pub const DEFAULT_WORKER_MEMORY_MB: u64 = 2048;
pub const DEFAULT_WORKER_START_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_WORKER_PREWARM: u64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The model the worker's inference goes to (`baseUrl`, `apiKey`, `model`, `timeoutMs`).
    /// Its `system_prompt` is the agent's `systemPrompt`, given to the worker as the
    /// gateway's extra instructions.
    pub provider: OpenAiConfig,
    /// The agent's workspace directory (the tools' working directory; its `AGENTS.md` joins
    /// the system prompt).
    pub workspace: std::path::PathBuf,
    /// Tool names the worker may run.
    pub tools: Vec<String>,
    /// The `openclaw` launcher; `None`: found beside ringgate or on `PATH` at launch.
    pub command: Option<std::path::PathBuf>,
    /// Workers of this agent running at once; further turns wait for a slot.
    pub max_concurrent: usize,
    /// A worker whose resident memory passes this is killed (its turn fails).
    pub max_memory_mb: u64,
    /// From launch to the worker's admission on the channel.
    pub start_timeout_ms: u64,
    /// Worker processes kept started ahead of the next turn (they wait for their envelope
    /// with node and the CLI loaded).
    pub prewarm: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1` (e.g. `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` for Ollama).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Deadline for the whole turn, and for each read of the stream.
    pub timeout_ms: u64,
    /// Optional system prompt sent first.
    pub system_prompt: Option<String>,
}

impl RuntimeConfig {
    pub fn name(&self) -> &'static str {
        match self {
            RuntimeConfig::Echo { .. } => "echo",
            RuntimeConfig::OpenAi(_) => "openai",
            RuntimeConfig::Worker(_) => "openclaw-worker",
        }
    }

    /// Whether a turn gives this runtime the conversation so far (the storage thread then
    /// reads and parses the last messages of the transcript). The echo agent answers the
    /// user's message alone.
    pub fn reads_context(&self) -> bool {
        match self {
            RuntimeConfig::Echo { .. } => false,
            RuntimeConfig::OpenAi(_) | RuntimeConfig::Worker(_) => true,
        }
    }

    /// `(provider, model)` as clients display them.
    pub fn model(&self) -> (&str, &str) {
        match self {
            RuntimeConfig::Echo { .. } => ("ringgate", "echo"),
            RuntimeConfig::OpenAi(o) => ("openai", o.model.as_str()),
            RuntimeConfig::Worker(w) => ("openai", w.provider.model.as_str()),
        }
    }
}

/// The agents used when the config file names none.
pub fn default_agents() -> Vec<AgentConfig> {
    vec![AgentConfig {
        id: "main".into(),
        runtime: RuntimeConfig::Echo {
            delay_ms: DEFAULT_ECHO_DELAY_MS,
            chunk_chars: DEFAULT_ECHO_CHUNK,
        },
    }]
}

fn invalid(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: msg.into(),
    }
}

/// Parses `ringgate.agents`: `{ <agentId>: { runtime: "echo" | "openai", … } }`.
pub fn parse_agents(v: &Value, path: &str) -> Result<Vec<AgentConfig>, ConfigError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object of agent ids"))?;
    let mut out = Vec::new();
    for (id, spec) in obj {
        let key = format!("{path}.{id}");
        if !valid_agent_id(id) {
            return Err(invalid(
                &key,
                "agent ids are 1-64 lowercase letters, digits, '-' or '_'",
            ));
        }
        let spec = spec
            .as_object()
            .ok_or_else(|| invalid(&key, "must be an object"))?;
        let runtime = spec
            .get("runtime")
            .and_then(Value::as_str)
            .unwrap_or("echo");
        let allowed: &[&str] = match runtime {
            "echo" => &["runtime", "chunkDelayMs", "chunkChars"],
            "openai" => &[
                "runtime",
                "baseUrl",
                "apiKey",
                "apiKeyEnv",
                "model",
                "timeoutMs",
                "systemPrompt",
            ],
            "openclaw-worker" => &[
                "runtime",
                "baseUrl",
                "apiKey",
                "apiKeyEnv",
                "model",
                "timeoutMs",
                "systemPrompt",
                "workspace",
                "tools",
                "command",
                "maxConcurrent",
                "maxMemoryMb",
                "startTimeoutMs",
                "prewarm",
            ],
            other => {
                return Err(invalid(
                    &format!("{key}.runtime"),
                    format!("`{other}` is not echo, openai or openclaw-worker"),
                ))
            }
        };
        if let Some(k) = spec.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey(format!("{key}.{k}")));
        }
        let num = |name: &str, min: u64, max: u64, default: u64| -> Result<u64, ConfigError> {
            match spec.get(name) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            &format!("{key}.{name}"),
                            format!("must be an integer between {min} and {max}"),
                        )
                    }),
            }
        };
        let text = |name: &str| -> Result<Option<String>, ConfigError> {
            match spec.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(&format!("{key}.{name}"), "must be a string")),
            }
        };
        let kind = runtime;
        let runtime = if runtime == "echo" {
            RuntimeConfig::Echo {
                delay_ms: num("chunkDelayMs", 0, 60_000, DEFAULT_ECHO_DELAY_MS)?,
                chunk_chars: num("chunkChars", 1, 1 << 20, DEFAULT_ECHO_CHUNK as u64)? as usize,
            }
        } else {
            let base_url = text("baseUrl")?.ok_or_else(|| {
                invalid(&format!("{key}.baseUrl"), format!("is required for {kind}"))
            })?;
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(invalid(
                    &format!("{key}.baseUrl"),
                    "must start with http:// or https://",
                ));
            }
            let model = text("model")?.ok_or_else(|| {
                invalid(&format!("{key}.model"), format!("is required for {kind}"))
            })?;
            let api_key = match (text("apiKey")?, text("apiKeyEnv")?) {
                (Some(k), _) => Some(k),
                (None, Some(var)) => Some(std::env::var(&var).map_err(|_| {
                    invalid(
                        &format!("{key}.apiKeyEnv"),
                        format!("environment variable {var} is not set"),
                    )
                })?),
                (None, None) => None,
            };
            let provider = OpenAiConfig {
                base_url: base_url.trim_end_matches('/').to_owned(),
                api_key,
                model,
                timeout_ms: num("timeoutMs", 100, 3_600_000, DEFAULT_PROVIDER_TIMEOUT_MS)?,
                system_prompt: text("systemPrompt")?,
            };
            if kind == "openai" {
                RuntimeConfig::OpenAi(provider)
            } else {
                RuntimeConfig::Worker(Box::new(worker_config(spec, &key, provider, &num)?))
            }
        };
        out.push(AgentConfig {
            id: id.clone(),
            runtime,
        });
    }
    if out.is_empty() {
        return Err(invalid(path, "must name at least one agent"));
    }
    Ok(out)
}

/// Reads an integer key of an agent within bounds, with a default: `(key, min, max, default)`.
type NumKey<'a> = dyn Fn(&str, u64, u64, u64) -> Result<u64, ConfigError> + 'a;

/// The worker-only keys of an `openclaw-worker` agent.
fn worker_config(
    spec: &serde_json::Map<String, Value>,
    key: &str,
    provider: OpenAiConfig,
    num: &NumKey,
) -> Result<WorkerConfig, ConfigError> {
    let workspace = match spec.get("workspace") {
        Some(Value::String(s)) if std::path::Path::new(s).is_absolute() => s.into(),
        _ => {
            return Err(invalid(
                &format!("{key}.workspace"),
                "is required for openclaw-worker: an absolute directory path",
            ))
        }
    };
    let tools = match spec.get("tools") {
        None => DEFAULT_WORKER_TOOLS.iter().map(|t| t.to_string()).collect(),
        Some(Value::Array(a)) => {
            let mut tools: Vec<String> = Vec::new();
            for t in a {
                let name = t
                    .as_str()
                    .filter(|n| WORKER_TOOLS.contains(n))
                    .ok_or_else(|| {
                        invalid(
                            &format!("{key}.tools"),
                            format!("tools are names from {}", WORKER_TOOLS.join(", ")),
                        )
                    })?;
                if !tools.iter().any(|x| x == name) {
                    tools.push(name.to_owned());
                }
            }
            tools
        }
        Some(_) => {
            return Err(invalid(
                &format!("{key}.tools"),
                "must be an array of tool names",
            ))
        }
    };
    let command = match spec.get("command") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.into()),
        Some(_) => {
            return Err(invalid(
                &format!("{key}.command"),
                "must be the path of the openclaw launcher",
            ))
        }
    };
    Ok(WorkerConfig {
        provider,
        workspace,
        tools,
        command,
        max_concurrent: num("maxConcurrent", 1, 64, DEFAULT_MAX_WORKERS)? as usize,
        max_memory_mb: num("maxMemoryMb", 256, 65_536, DEFAULT_WORKER_MEMORY_MB)?,
        start_timeout_ms: num(
            "startTimeoutMs",
            1_000,
            600_000,
            DEFAULT_WORKER_START_TIMEOUT_MS,
        )?,
        prewarm: num("prewarm", 0, 8, DEFAULT_WORKER_PREWARM)? as usize,
    })
}

pub fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_both_runtimes_and_names_bad_keys() {
        let a = parse_agents(
            &json!({"main": {"runtime": "echo", "chunkDelayMs": 0},
                    "gpt": {"runtime": "openai", "baseUrl": "http://127.0.0.1:9/v1/", "model": "m"}}),
            "ringgate.agents",
        )
        .unwrap();
        assert_eq!(
            a[0].runtime,
            RuntimeConfig::Echo {
                delay_ms: 0,
                chunk_chars: DEFAULT_ECHO_CHUNK
            }
        );
        match &a[1].runtime {
            RuntimeConfig::OpenAi(o) => assert_eq!(o.base_url, "http://127.0.0.1:9/v1"),
            other => panic!("{other:?}"),
        }
        let e = parse_agents(
            &json!({"x": {"runtime": "openai", "model": "m"}}),
            "ringgate.agents",
        )
        .unwrap_err();
        assert!(e.to_string().contains("ringgate.agents.x.baseUrl"), "{e}");
        let e = parse_agents(&json!({"x": {"delay": 1}}), "ringgate.agents").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown config key `ringgate.agents.x.delay`"
        );
        let e = parse_agents(&json!({"Bad Id": {}}), "ringgate.agents").unwrap_err();
        assert!(e.to_string().contains("agent ids"), "{e}");
    }
}
