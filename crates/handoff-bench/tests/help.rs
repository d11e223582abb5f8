//! `handoff-bench --help` and `handoff-bench live --help` print no password from the
//! environment (the broker URL may carry one), as every `handoff` command's help does.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_handoff-bench");
const PASSWORD: &str = "s3cret-bench-password";

#[test]
fn help_never_prints_a_password_from_the_environment() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["live", "--help"],
        &["live", "-h"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .env(
                "HANDOFF_AMQP_URL",
                format!("amqp://svc:{PASSWORD}@localhost:5672/%2f"),
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", out.status);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("Usage"), "{args:?}: {text}");
        assert!(
            !text.contains(PASSWORD),
            "{args:?} printed the password: {text}"
        );
    }
}
