//! Password policy and argon2id hashing (PHC strings; OWASP's first recommended setting).

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, Version};

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 256;

/// A password that passed the policy. Never logged, never serialised.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "Use at least {MIN_LEN} characters; a passphrase of a few words is easiest to remember."
    )]
    TooShort,
    #[error("Use at most {MAX_LEN} characters.")]
    TooLong,
    #[error("The password must not be your email address.")]
    SameAsEmail,
}

impl Password {
    pub fn parse(raw: &str, email: Option<&str>) -> Result<Self, PasswordError> {
        let len = raw.chars().count();
        if len < MIN_LEN {
            return Err(PasswordError::TooShort);
        }
        if len > MAX_LEN {
            return Err(PasswordError::TooLong);
        }
        if email.is_some_and(|e| e.eq_ignore_ascii_case(raw.trim())) {
            return Err(PasswordError::SameAsEmail);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn hasher() -> Argon2<'static> {
    // m = 19 MiB, t = 2, p = 1: the OWASP minimum for argon2id.
    let params = Params::new(19_456, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

pub fn hash(password: &Password) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.0.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Hashes on the blocking pool: argon2 takes tens of milliseconds of CPU, which must not
/// stall the async runtime. Failures are logged and become a 500 without detail.
pub async fn hash_off_thread(password: Password) -> Result<String, crate::problem::Problem> {
    let joined = tokio::task::spawn_blocking(move || hash(&password)).await;
    match joined {
        Ok(Ok(phc)) => Ok(phc),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "password hashing failed");
            Err(crate::problem::Problem::internal())
        }
        Err(e) => {
            tracing::error!(error = %e, "password hashing task failed");
            Err(crate::problem::Problem::internal())
        }
    }
}

/// Verifies against a stored PHC string. With `None` it hashes against a fixed dummy so
/// that an unknown account costs the same time as a known one (no enumeration by timing).
pub fn verify(candidate: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY
        .get_or_init(|| hash(&Password("dummy-password-for-timing".into())).unwrap_or_default());
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = hasher()
        .verify_password(candidate.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// [`verify`], and the CPU time it took on this thread: argon2's whole cost. Sign-in logs it
/// (`hash_cpu_us`), so an operator sees what a sign-in costs at the function's memory size
/// (Lambda's CPU share follows it), and the benchmark weighs it against the process's CPU.
pub fn verify_measured(candidate: &str, stored: Option<&str>) -> (bool, Duration) {
    let before = thread_cpu_time();
    let ok = verify(candidate, stored);
    (ok, thread_cpu_time().saturating_sub(before))
}

/// CPU time used by the calling thread (zero where the clock is unavailable).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given, which lives on this frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_bounds_are_enforced() {
        let cases = [
            ("short", Err(PasswordError::TooShort)),
            ("exactly12chr", Ok(())),
            (&"x".repeat(256)[..], Ok(())),
            (&"x".repeat(257)[..], Err(PasswordError::TooLong)),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Password::parse(raw, None).map(|_| ()),
                expected,
                "len {}",
                raw.len()
            );
        }
    }

    #[test]
    fn the_email_is_not_a_password() {
        assert_eq!(
            Password::parse("ada@example.com", Some("ada@example.com")).unwrap_err(),
            PasswordError::SameAsEmail
        );
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let pw = Password::parse("correct horse battery", None).unwrap();
        let phc = hash(&pw).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", Some(&phc)));
        assert!(!verify("wrong horse battery", Some(&phc)));
    }

    #[test]
    fn verifying_without_a_stored_hash_always_fails() {
        assert!(!verify("dummy-password-for-timing", None));
    }

    #[test]
    fn a_measured_verification_reports_the_cpu_argon2_took() {
        let password = Password("correct horse battery staple".into());
        let phc = hash(&password).unwrap();
        let (ok, cpu) = verify_measured(password.expose(), Some(&phc));
        assert!(ok);
        assert!(cpu > Duration::ZERO, "argon2 takes CPU time: {cpu:?}");
        let (wrong, _) = verify_measured("another password entirely", Some(&phc));
        assert!(!wrong);
    }
}
