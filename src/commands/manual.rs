//! `cmod completions` and `cmod man`: shell completion scripts and man pages, generated
//! from the same clap definitions as `--help`, so they cannot drift from it.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::diagnostic::CliError;

/// `cmod completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "cmod", &mut script);
    crate::output::stdout_bytes(&script);
    Ok(())
}

/// `cmod man [COMMAND...]`: the man page (roff) of cmod or of one of its commands, named
/// as git and Cargo name theirs (`cmod-realise(1)`, `cmod-store-verify(1)`).
pub fn man(path: &[String]) -> Result<(), CliError> {
    let page = page_of(path)?;
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| CliError::Internal(format!("cannot render the man page: {e}")))?;
    crate::output::stdout_bytes(&roff);
    Ok(())
}

/// The command `path` names (by name or alias), renamed to its page's name.
fn page_of(path: &[String]) -> Result<clap::Command, CliError> {
    let mut command = Cli::command();
    command.build();
    let mut name = "cmod".to_string();
    for (depth, part) in path.iter().enumerate() {
        let Some(sub) = command.find_subcommand(part).cloned() else {
            let known: Vec<&str> = command
                .get_subcommands()
                .map(clap::Command::get_name)
                .collect();
            let help = if known.is_empty() {
                format!(
                    "it has no commands: run `cmod man {}`",
                    path[..depth].join(" ")
                )
            } else {
                format!("its commands: {}", known.join(", "))
            };
            let message = format!("`{name}` has no command `{part}`");
            return Err(CliError::usage(message, Some(help)));
        };
        name = format!("{name}-{}", sub.get_name());
        command = sub.name(name.clone());
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command (positionals included) has a description for
    /// `--help`, the man pages and the completions; clap's own `--help`/`--version`
    /// excepted.
    #[test]
    fn every_argument_is_described() {
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        undescribed(&command, "cmod", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without a description: {missing:?}"
        );
    }

    fn undescribed(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if command.get_about().is_none() && path != "cmod" {
            missing.push(format!("{path} (the command)"));
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            undescribed(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    #[test]
    fn a_page_is_named_after_its_command_path() {
        let page = page_of(&["store".into(), "verify".into()]).expect("a known command");
        assert_eq!(page.get_name(), "cmod-store-verify");
        let alias = page_of(&["build".into()]).expect("an alias");
        assert_eq!(alias.get_name(), "cmod-realise");
    }

    #[test]
    fn an_unknown_command_is_a_usage_error_listing_the_known_ones() {
        let Err(e) = page_of(&["store".into(), "nope".into()]) else {
            panic!("`store nope` has no page");
        };
        let rendered = e.render();
        assert!(
            rendered.contains("`cmod-store` has no command `nope`"),
            "{rendered}"
        );
        assert!(rendered.contains("verify"), "{rendered}");
        assert_eq!(e.exit_class().code(), 2);
    }
}
