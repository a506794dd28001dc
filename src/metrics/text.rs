//! Reading a Prometheus text exposition back into samples (`ringgate top` reads the gateway's
//! own endpoint). Only what the format needs: `name{label="value",…} value`, comments skipped,
//! label values unescaped.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an exposition; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_owned();
            let mut chars = rest[eq + 1..].strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key, value));
            rest = &rest[eq + 1 + 1 + end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_labels_and_values() {
        let t = "# HELP x y\n# TYPE a counter\na_total 3\n\
                 b{shard=\"1\",reason=\"say \\\"hi\\\", ok\"} 2.5\nc{le=\"+Inf\"} +Inf\nbroken{\n";
        let s = parse(t);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].name, "a_total");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].label("shard"), Some("1"));
        assert_eq!(s[1].label("reason"), Some("say \"hi\", ok"));
        assert_eq!(s[1].value, 2.5);
        assert_eq!(s[2].value, f64::INFINITY);
    }

    #[test]
    fn reads_what_the_renderer_writes() {
        let mut m = super::super::shard::ShardMetrics::new();
        m.frames_in = 7;
        m.closed(1008);
        let scrape = super::super::render::Scrape {
            process: Default::default(),
            shards: vec![super::super::gather::Snapshot {
                shard: 0,
                metrics: m,
                ..Default::default()
            }],
            loops: vec![],
            store: super::super::render::Store {
                queue_depth: 0,
                batch_size: super::super::hist::Hist::new(super::super::hist::BATCH_SIZE),
                commit_seconds: super::super::hist::Hist::new(super::super::hist::LATENCY_SECONDS),
                failed_commits: 0,
            },
            cluster: Some(std::sync::Arc::new(crate::cluster::View {
                host: "a".into(),
                nats: "nats://x".into(),
                connected: true,
                since_ms: 0,
                members: ["b", "c"]
                    .iter()
                    .map(|n| crate::cluster::members::MemberView {
                        name: (*n).into(),
                        alive: *n == "b",
                        url: String::new(),
                        connections: 0,
                        approvers: 0,
                        last_seen_ms: 0,
                        started_ms: 0,
                    })
                    .collect(),
                dropped: 3,
                malformed: 0,
                settled: true,
            })),
        };
        let s = parse(&scrape.encode());
        let members = |state: &str| {
            s.iter()
                .find(|x| x.name == "ringgate_cluster_members" && x.label("state") == Some(state))
                .map(|x| x.value)
        };
        assert_eq!((members("alive"), members("dead")), (Some(2.0), Some(1.0)));
        let dropped = s
            .iter()
            .find(|x| x.name == "ringgate_cluster_messages_dropped_total")
            .map(|x| x.value);
        assert_eq!(dropped, Some(3.0));
        let frames = s
            .iter()
            .find(|x| x.name == "ringgate_frames_received_total")
            .unwrap();
        assert_eq!((frames.label("shard"), frames.value), (Some("0"), 7.0));
        let close = s
            .iter()
            .find(|x| x.name == "ringgate_closes_total")
            .unwrap();
        assert_eq!(close.label("code"), Some("1008"));
    }
}
