//! Random tokens and ids, from the operating system's generator.
//!
//! The control tokens of the guest agent and of the served probe, the
//! probe's session id and the lab's run id are all drawn here, through the
//! [`getrandom`] crate (on Linux the `getrandom(2)` system call, which
//! blocks only until the kernel's pool is first seeded, early in boot).
//!
//! There is no fallback: when the system cannot give random bytes the
//! caller gets a [`RandomError`] and must fail with it. A token made from
//! the clock, the PID or zeros would be guessable, and would look exactly
//! like a good one.

use std::fmt::Write as _;

use thiserror::Error;

/// The operating system could not give random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("cannot draw random bytes from the operating system: {0}")]
pub struct RandomError(getrandom::Error);

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(RandomError)
}

/// `bytes` random bytes as lowercase hex: `2 * bytes` characters of
/// `0-9a-f`.
pub fn token_hex(bytes: usize) -> Result<String, RandomError> {
    let mut b = vec![0u8; bytes];
    fill(&mut b)?;
    let mut s = String::with_capacity(2 * bytes);
    for x in &b {
        // Writing to a String cannot fail.
        let _ = write!(s, "{x:02x}");
    }
    Ok(s)
}

/// A random `u64`.
pub fn random_u64() -> Result<u64, RandomError> {
    let mut b = [0u8; 8];
    fill(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower_hex(s: &str) -> bool {
        s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[test]
    fn tokens_have_the_length_and_charset_asked_for_and_differ() {
        for bytes in [1, 3, 8, 16, 32] {
            let t = token_hex(bytes).unwrap();
            assert_eq!(t.len(), 2 * bytes, "{t}");
            assert!(lower_hex(&t), "{t}");
        }
        // 128 bits: equal twice in a row only if the generator is broken.
        let (a, b) = (token_hex(16).unwrap(), token_hex(16).unwrap());
        assert_ne!(a, b);
        assert_ne!(a, "0".repeat(32));
        assert_eq!(token_hex(0).unwrap(), "");
    }

    #[test]
    fn u64s_differ() {
        let (a, b) = (random_u64().unwrap(), random_u64().unwrap());
        assert_ne!(a, b);
    }
}
