//! Linux namespace + Landlock sandbox. (Being implemented; see issue 3.)

use crate::{Action, Enforcement, Mode, Outcome, SandboxError};

pub(crate) fn probe(mode: Mode) -> Result<Enforcement, SandboxError> {
    Err(SandboxError::Unsupported {
        mode,
        reason: "not implemented yet".into(),
        remedy: "pass --sandbox=off".into(),
    })
}

pub(crate) fn run(mode: Mode, _action: &Action) -> Result<Outcome, SandboxError> {
    probe(mode).map(|_| unreachable_outcome())
}

fn unreachable_outcome() -> Outcome {
    Outcome {
        exit: crate::ExitKind::Code(1),
        elapsed: std::time::Duration::ZERO,
        enforcement: Enforcement {
            mode: Mode::Off,
            landlock_abi: None,
        },
    }
}
