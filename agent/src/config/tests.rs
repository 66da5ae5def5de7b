use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn from(file: Option<&str>, vars: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_sources(file.map(|t| (Path::new("agent.toml"), t)), env(vars))
}

fn problems(result: Result<AgentConfig, ConfigError>) -> Vec<String> {
    result.expect_err("should be refused").problems
}

#[test]
fn defaults_without_file_or_env() {
    let c = from(None, &[]).unwrap();
    assert_eq!(c, AgentConfig::default());
    assert_eq!(c.collect.interval, Duration::from_secs(15));
    assert_eq!(c.collect.top_processes, 10);
    assert_eq!(c.prometheus.listen.to_string(), "127.0.0.1:9464");
    assert!(c.prometheus.enabled);
    assert_eq!(c.collect.network_exclude_interfaces, ["lo"]);
    assert!(!c.collect.command_line);
}

#[test]
fn example_file_parses_and_states_the_defaults() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let c = from(Some(&text), &[]).unwrap();
    assert_eq!(
        c,
        AgentConfig::default(),
        "the example documents the defaults"
    );
}

#[test]
fn example_file_mentions_every_key() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let defaults = toml::Table::try_from(AgentConfig::default()).unwrap();
    for (section, keys) in &defaults {
        assert!(text.contains(&format!("[{section}]")), "[{section}]");
        for key in keys.as_table().unwrap().keys() {
            assert!(text.contains(&format!("\n{key} = ")), "{section}.{key}");
        }
    }
}

#[test]
fn file_values_apply() {
    let c = from(
        Some("[collect]\ninterval = \"1s\"\ntop_processes = 3\ntemperature = false\n[prometheus]\nlisten = \"0.0.0.0:1\"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(c.collect.interval, Duration::from_secs(1));
    assert_eq!(c.collect.top_processes, 3);
    assert!(!c.collect.temperature);
    assert!(c.collect.cpu, "unset keys keep defaults");
    assert_eq!(c.prometheus.listen.port(), 1);
}

#[test]
fn env_overrides_file_with_typed_values() {
    let c = from(
        Some("[collect]\ninterval = \"30s\"\n"),
        &[
            ("RMM_AGENT_COLLECT_INTERVAL", "1s"),
            ("RMM_AGENT_COLLECT_TOP_PROCESSES", "5"),
            ("RMM_AGENT_COLLECT_COMMAND_LINE", "true"),
            (
                "RMM_AGENT_COLLECT_NETWORK_EXCLUDE_INTERFACES",
                "lo, docker*",
            ),
            ("RMM_AGENT_COLLECT_DISK_EXCLUDE_DEVICES", "[\"loop*\"]"),
            ("RMM_AGENT_PROMETHEUS_LISTEN", "127.0.0.1:19464"),
            ("RMM_AGENT_PROMETHEUS_ENABLED", "off"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.collect.interval, Duration::from_secs(1));
    assert_eq!(c.collect.top_processes, 5);
    assert!(c.collect.command_line);
    assert_eq!(c.collect.network_exclude_interfaces, ["lo", "docker*"]);
    assert_eq!(c.collect.disk_exclude_devices, ["loop*"]);
    assert_eq!(c.prometheus.listen.port(), 19464);
    assert!(!c.prometheus.enabled);
}

#[test]
fn empty_env_list_clears_it() {
    let c = from(
        None,
        &[("RMM_AGENT_COLLECT_NETWORK_EXCLUDE_INTERFACES", "")],
    )
    .unwrap();
    assert!(c.collect.network_exclude_interfaces.is_empty());
}

#[test]
fn unknown_and_bad_env_vars_are_named() {
    let p = problems(from(
        None,
        &[
            ("RMM_AGENT_BOGUS", "1"),
            ("RMM_AGENT_COLLECT_TOP_PROCESSES", "ten"),
            ("RMM_AGENT_COLLECT_CPU", "maybe"),
        ],
    ));
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].starts_with("RMM_AGENT_BOGUS: unknown configuration section"),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("RMM_AGENT_COLLECT_CPU: expected true or false"),
        "{p:?}"
    );
    assert!(
        p[2].starts_with("RMM_AGENT_COLLECT_TOP_PROCESSES: expected an integer"),
        "{p:?}"
    );

    let p = problems(from(None, &[("RMM_AGENT_COLLECT_FOO", "1")]));
    assert!(
        p[0].starts_with("RMM_AGENT_COLLECT_FOO: unknown field `foo`"),
        "{p:?}"
    );

    let p = problems(from(None, &[("RMM_AGENT_COLLECT_INTERVAL", "soon")]));
    assert!(
        p[0].starts_with("RMM_AGENT_COLLECT_INTERVAL: invalid value"),
        "{p:?}"
    );
    assert!(!p[0].contains('\n'), "{p:?}");

    let p = problems(from(None, &[("RMM_AGENT_PROMETHEUS_LISTEN", "localhost")]));
    assert!(p[0].starts_with("RMM_AGENT_PROMETHEUS_LISTEN: "), "{p:?}");
}

#[test]
fn unknown_and_bad_file_keys_are_named() {
    let p = problems(from(Some("[collect]\nintervall = \"1s\"\n"), &[]));
    assert!(
        p[0].contains("agent.toml: key `collect.intervall`"),
        "{p:?}"
    );
    assert!(p[0].contains("unknown field `intervall`"), "{p:?}");

    let p = problems(from(Some("[colect]\n"), &[]));
    assert!(p[0].contains("unknown field `colect`"), "{p:?}");

    let p = problems(from(Some("[collect]\ntop_processes = \"x\"\n"), &[]));
    assert!(p[0].contains("key `collect.top_processes`"), "{p:?}");

    let p = problems(from(Some("[collect\n"), &[]));
    assert!(p[0].starts_with("agent.toml: "), "{p:?}");
}

#[test]
fn ranges_are_checked_all_at_once() {
    let p = problems(from(
        Some("[collect]\ninterval = \"10ms\"\ncommand_line_max_length = 0\n"),
        &[("RMM_AGENT_COLLECT_TOP_PROCESSES", "5000")],
    ));
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].starts_with("key `collect.interval`: must be between"),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("RMM_AGENT_COLLECT_TOP_PROCESSES: at most 1000"),
        "{p:?}"
    );
    assert!(
        p[2].starts_with("key `collect.command_line_max_length`"),
        "{p:?}"
    );
}

#[test]
fn error_display_lists_every_problem() {
    let e = ConfigError {
        problems: vec!["a".into(), "b".into()],
    };
    assert_eq!(e.to_string(), "invalid configuration:\n  - a\n  - b");
}
