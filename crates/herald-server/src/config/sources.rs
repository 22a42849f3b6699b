//! Reading each source into a [`Settings`] layer: the command line and the
//! environment with clap, the TOML file with serde.
//!
//! # The environment, hermetically
//!
//! clap's `env` support reads the process environment (when the command is
//! built). To keep [`Config::from_args`](super::Config::from_args)
//! testable with an injected lookup, the command that *parses* has its
//! environment variables removed ([`parse_command`]); only the one that
//! renders `--help` keeps them, and shows their names, never their values
//! ([`help_command`]). The names still come from the one definition:
//! [`environment`] asks the help command which variable belongs to which
//! flag, reads it through the lookup, and parses its value with the same
//! command, as if it had been given as that flag. So a value means the same
//! in a flag and in a variable, and is checked the same way.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};
use serde_json::Value;

use super::Config;
use super::settings::Settings;

/// The program name clap sees as the first argument.
const BIN: &str = "herald-server";

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum CommandLine {
    /// Run, with these settings from flags; `given` lists the ids of the
    /// settings the flags set.
    Run {
        /// The flags' layer.
        settings: Box<Settings>,
        /// The ids (field names) of the settings given as flags.
        given: Vec<String>,
    },
    /// `--help` or `--version`: print this and exit successfully.
    Print(String),
}

/// The command as `--help` shows it: every setting with its environment
/// variable (not its value, which may hold a key) and its default (from
/// [`Config::default`]), both at the end of its help line.
pub(crate) fn help_command() -> Command {
    let defaults = defaults();
    Settings::command().mut_args(|arg| {
        let mut notes = Vec::new();
        if let Some(var) = arg.get_env() {
            notes.push(format!("[env: {}]", var.to_string_lossy()));
        }
        if let Some(default) = defaults.get(arg.get_id().as_str()) {
            notes.push(format!("[default: {default}]"));
        }
        if notes.is_empty() {
            return arg;
        }
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        arg.hide_env(true)
            .help(format!("{help} {}", notes.join(" ")))
    })
}

/// The command that parses: the same, except that clap reads no
/// environment variable itself.
fn parse_command() -> Command {
    help_command().mut_args(|arg| arg.env(None))
}

/// Each setting's default, as `--help` shows it, by field name.
fn defaults() -> std::collections::BTreeMap<String, String> {
    let Ok(Value::Object(fields)) = serde_json::to_value(Settings::from_config(&Config::default()))
    else {
        return Default::default();
    };
    fields
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::Null => None,
            Value::String(s) => Some((name, s)),
            // A list (`cors_origins`) as the flag takes it.
            Value::Array(items) => Some((
                name,
                items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            other => Some((name, other.to_string())),
        })
        .collect()
}

/// Parses the command line (without the program name).
///
/// # Errors
///
/// An unknown flag, or a missing or malformed value: the [`clap::Error`],
/// whose text has the usage.
pub(crate) fn command_line<I, T>(args: I) -> Result<CommandLine, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = std::iter::once(BIN.into())
        .chain(args.into_iter().map(Into::into))
        .collect();
    let matches = match parse_command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            // The same request, answered by the command that shows the
            // environment variables.
            let text = match help_command().try_get_matches_from(&argv) {
                Err(help) => help.to_string(),
                Ok(_) => e.to_string(),
            };
            return Ok(CommandLine::Print(text));
        }
        Err(e) if e.kind() == ErrorKind::DisplayVersion => {
            return Ok(CommandLine::Print(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    let given = given(&matches);
    let settings = Settings::from_arg_matches(&matches)?;
    Ok(CommandLine::Run {
        settings: Box::new(settings),
        given,
    })
}

/// The ids of the arguments the command line gave.
fn given(matches: &ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_owned())
        .collect()
}

/// The environment's layer: each setting's variable, read through `lookup`
/// (never from the process environment), except for settings in `given`
/// (the flags win). `HERALD_APP` is always read (apps from every source are
/// served) and split at commas. Empty variables count as unset.
///
/// # Errors
///
/// A variable whose value does not parse: the message names it.
pub(crate) fn environment<F>(lookup: F, given: &[String]) -> anyhow::Result<Settings>
where
    F: Fn(&str) -> Option<String>,
{
    let help = help_command();
    let mut layer = Settings::default();
    for arg in help.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env().and_then(|v| v.to_str()), arg.get_long())
        else {
            continue;
        };
        let id = arg.get_id().as_str();
        let repeatable = id == "app";
        if given.iter().any(|g| g == id) && !repeatable {
            continue;
        }
        let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let items: Vec<&str> = if repeatable {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            vec![value.as_str()]
        };
        let argv = std::iter::once(BIN.to_owned())
            .chain(items.iter().map(|item| format!("--{long}={item}")));
        let matches = parse_command()
            .try_get_matches_from(argv)
            .map_err(|e| anyhow::anyhow!("environment variable {var}: {}", message(&e)))?;
        let from_var = Settings::from_arg_matches(&matches)
            .map_err(|e| anyhow::anyhow!("environment variable {var}: {}", message(&e)))?;
        layer = from_var.or(layer);
    }
    Ok(layer)
}

/// A clap error's message, without the `error: ` prefix and the usage.
fn message(e: &clap::Error) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    text.split("\n\n").next().unwrap_or(text).trim().to_owned()
}

/// The TOML file's layer.
///
/// # Errors
///
/// Malformed TOML, an unknown key, or a value of the wrong type (the
/// message names the key and shows the line).
pub(crate) fn file(text: &str) -> anyhow::Result<Settings> {
    Ok(toml::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naming rule of the module docs holds for every setting.
    #[test]
    fn every_setting_has_a_flag_and_a_variable_named_after_it() {
        let help = help_command();
        let mut seen = Vec::new();
        for arg in help.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
            let var = format!("HERALD_{}", id.to_ascii_uppercase());
            assert_eq!(arg.get_env().and_then(|v| v.to_str()), Some(var.as_str()));
            seen.push(id.to_owned());
        }
        assert_eq!(seen.len(), 27, "{seen:?}");
    }

    /// `--help` shows a default for every setting but the file and apps.
    #[test]
    fn help_shows_variables_and_defaults() {
        let help = help_command().render_help().to_string();
        let defaults = defaults();
        for arg in help_command().get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let long = format!("--{}", arg.get_long().unwrap());
            assert!(help.contains(&long), "{long} in\n{help}");
            let var = arg.get_env().unwrap().to_str().unwrap();
            assert!(help.contains(&format!("[env: {var}]")), "{var} in\n{help}");
            // No default: the file, apps, and the settings that are off
            // unless set.
            if !matches!(
                id,
                "config" | "app" | "metrics_token" | "tls_cert" | "tls_key" | "bus" | "node_id"
            ) {
                let default = &defaults[id];
                assert!(
                    help.contains(&format!("[default: {default}]")),
                    "{id}\n{help}"
                );
            }
        }
        for shown in [
            "[default: 127.0.0.1:8080]",
            "[default: 8MiB]",
            "[default: 4MiB]",
        ] {
            assert!(help.contains(shown), "{shown} in\n{help}");
        }
    }

    #[test]
    fn help_hides_variable_values() {
        // Whatever the process environment holds, `--help` shows names only.
        let help = help_command().render_long_help().to_string();
        assert!(!help.contains("[env: HERALD_APP="), "{help}");
    }

    #[test]
    fn clap_messages_lose_the_prefix_and_usage() {
        let e = parse_command()
            .try_get_matches_from([BIN, "--max-body=lots"])
            .unwrap_err();
        let m = message(&e);
        assert!(
            m.starts_with("invalid value 'lots' for '--max-body <BYTES>'"),
            "{m}"
        );
        assert!(!m.contains("Usage") && !m.contains("--help"), "{m}");
    }
}
