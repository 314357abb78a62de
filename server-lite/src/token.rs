//! Bearer tokens: generated from the OS's randomness, shown once, stored only as
//! SHA-256 hashes and compared in constant time.
//!
//! A token is its kind's prefix (so a leaked one is recognisable: `cfa_` admin, `cfo_`
//! operator, `cfg_` agent API key, `cfe_` enrolment) and 32 random bytes in hex. The
//! database keeps the hash and, to find the row, the first 16 hex digits of the hash
//! (`lookup`): the index reveals nothing useful about the token, and the full hash is
//! then compared with `subtle`, so no early-exit comparison ever sees a secret.

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The server's administrator: tenants, backends, operator tokens.
    Admin,
    /// An operator of one tenant.
    Operator,
    /// A one-time enrolment token of one tenant.
    Enrolment,
    /// An agent's API key.
    Agent,
}

impl TokenKind {
    /// The prefix tokens of this kind start with.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Admin => "cfa_",
            TokenKind::Operator => "cfo_",
            TokenKind::Enrolment => "cfe_",
            TokenKind::Agent => "cfg_",
        }
    }

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Operator => "operator",
            TokenKind::Enrolment => "enrolment",
            TokenKind::Agent => "agent",
        }
    }

    /// The kind a token claims by its prefix, if any.
    pub fn of(token: &str) -> Option<Self> {
        [
            TokenKind::Admin,
            TokenKind::Operator,
            TokenKind::Enrolment,
            TokenKind::Agent,
        ]
        .into_iter()
        .find(|k| token.starts_with(k.prefix()))
    }
}

/// A freshly generated token: the text to show once, and what to store.
pub struct NewToken {
    /// The token itself, wiped on drop. Shown to its holder once, never stored.
    pub secret: Zeroizing<String>,
    /// What the database keeps.
    pub hash: TokenHash,
}

impl NewToken {
    /// Generates a token of `kind`.
    pub fn generate(kind: TokenKind) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        let secret = Zeroizing::new(format!("{}{}", kind.prefix(), hex::encode(*bytes)));
        let hash = TokenHash::of(&secret);
        NewToken { secret, hash }
    }
}

/// The SHA-256 of a token, and the index part of it that finds the row.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash {
    /// The full hash.
    pub hash: [u8; 32],
}

impl TokenHash {
    /// Hashes a presented token.
    pub fn of(token: &str) -> Self {
        TokenHash {
            hash: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The lookup key: the first 8 bytes of the hash, in hex.
    pub fn lookup(&self) -> String {
        hex::encode(&self.hash[..8])
    }

    /// Compares with a stored hash in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.hash.ct_eq(stored))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", self.lookup())
    }
}

/// Random hex of `bytes` bytes (IDs of uploads, prefixes, incidents).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A short random number that ties a client's "internal error" to a log line.
pub fn incident_id() -> String {
    random_hex(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_prefix_and_match_only_their_hash() {
        let t = NewToken::generate(TokenKind::Agent);
        assert!(t.secret.starts_with("cfg_"));
        assert_eq!(t.secret.len(), 4 + 64);
        assert_eq!(TokenKind::of(&t.secret), Some(TokenKind::Agent));
        assert!(TokenHash::of(&t.secret).matches(&t.hash.hash));
        let other = NewToken::generate(TokenKind::Agent);
        assert!(!TokenHash::of(&other.secret).matches(&t.hash.hash));
        assert!(!TokenHash::of(&t.secret).matches(&t.hash.hash[..31]));
        assert_eq!(TokenKind::of("nope"), None);
        assert!(!format!("{:?}", t.hash).contains(&hex::encode(t.hash.hash)));
    }
}
