//! What the site file names outside itself: passphrases (the first line of a file, or an
//! environment variable: `auth_passphrase_file`, `priv_passphrase_env`, …; the error names
//! the file or variable, never what it holds), and a forward target's host name, resolved
//! by the system's resolver.

use crate::engine::config::SecretAt;

/// Reads the passphrase at `at`.
pub fn read(at: SecretAt<'_>) -> Result<String, String> {
    match at {
        SecretAt::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
            let line = text.lines().next().unwrap_or_default();
            Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
        }
        SecretAt::Env(name) => match std::env::var(name) {
            Ok(v) => Ok(v),
            Err(std::env::VarError::NotPresent) => Err("the variable is not set".into()),
            Err(std::env::VarError::NotUnicode(_)) => Err("the variable is not UTF-8".into()),
        },
        SecretAt::Host(host_port) => {
            use std::net::ToSocketAddrs;
            match host_port.to_socket_addrs() {
                Ok(mut found) => found
                    .next()
                    .map(|a| a.to_string())
                    .ok_or_else(|| "it resolves to no address".into()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_first_line_and_a_missing_one_says_so_without_its_content() {
        let dir = std::env::temp_dir().join(format!("trapgate-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("auth");
        std::fs::write(&f, "authpass123\r\nsecond line\n").unwrap();
        assert_eq!(
            read(SecretAt::File(f.to_str().unwrap())),
            Ok("authpass123".into())
        );
        let missing = read(SecretAt::File("/nonexistent/trapgate/auth")).unwrap_err();
        assert!(missing.starts_with("cannot read it:"), "{missing}");
        assert_eq!(
            read(SecretAt::Env("TRAPGATE_TEST_SURELY_UNSET_VARIABLE")),
            Err("the variable is not set".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_host_name_resolves_to_one_address_and_a_bad_one_says_why() {
        let a: std::net::SocketAddr = read(SecretAt::Host("localhost:1162"))
            .expect("localhost resolves")
            .parse()
            .expect("an address");
        assert!(a.ip().is_loopback() && a.port() == 1162, "{a}");
        assert!(read(SecretAt::Host("localhost:notaport")).is_err());
    }
}
