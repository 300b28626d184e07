//! Who may do what: the access tokens a server accepts, each granting everything or only the
//! verbs that change nothing, checked by the proof a client sends (never the token itself).

use ferry_core::token::Grant;

/// What a session may do, as its greeting decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// It may run verbs that change files (and stop the server).
    pub writes: bool,
}

/// An access token as the server keeps it: the key its proofs are made with, never the token,
/// and never shown by `Debug`.
#[derive(Clone)]
pub struct Token {
    key: [u8; 32],
    writes: bool,
}

impl Token {
    /// The token granting `grant`; `None` when its secret is empty.
    pub fn new(grant: &Grant) -> Option<Token> {
        (!grant.secret.is_empty()).then(|| Token {
            key: ferry_core::identity::token_key(&grant.secret),
            writes: grant.writes,
        })
    }

    /// A token granting everything.
    pub fn read_write(secret: &str) -> Option<Token> {
        Token::new(&Grant {
            secret: secret.to_string(),
            writes: true,
        })
    }

    /// A token granting only the verbs that change nothing.
    pub fn read_only(secret: &str) -> Option<Token> {
        Token::new(&Grant {
            secret: secret.to_string(),
            writes: false,
        })
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(.., writes: {})", self.writes)
    }
}

/// What a client may do that sent `proof` on the session bound to `binding`: everything when
/// the server has no tokens, else what the token it proves grants. Every token is tried, so
/// the time taken does not say which one matched.
pub fn check(
    tokens: &[Token],
    binding: &[u8; 32],
    proof: Option<&str>,
) -> Result<Access, &'static str> {
    if tokens.is_empty() {
        return Ok(Access { writes: true });
    }
    let Some(proof) = proof else {
        return Err("this server requires an access token");
    };
    let mut granted = None;
    for token in tokens {
        if ferry_core::identity::proof_matches(&token.key, binding, proof) {
            granted = granted.or(Some(Access {
                writes: token.writes,
            }));
        }
    }
    granted.ok_or("wrong access token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::identity::proof;

    #[test]
    fn a_proof_grants_what_its_token_grants_and_nothing_else_gets_in() {
        let binding = [7u8; 32];
        let tokens = [
            Token::read_write("s3cret ✓").unwrap(),
            Token::read_only("viewer").unwrap(),
        ];
        let access = |p: Option<&str>| check(&tokens, &binding, p);
        assert_eq!(
            access(Some(&proof("s3cret ✓", &binding))),
            Ok(Access { writes: true })
        );
        assert_eq!(
            access(Some(&proof("viewer", &binding))),
            Ok(Access { writes: false })
        );
        assert_eq!(
            access(Some(&proof("s3cret", &binding))),
            Err("wrong access token")
        );
        assert_eq!(
            access(Some(&proof("viewer", &[8u8; 32]))),
            Err("wrong access token")
        );
        assert_eq!(
            access(Some("s3cret ✓")),
            Err("wrong access token"),
            "the token is no proof"
        );
        assert_eq!(access(None), Err("this server requires an access token"));
        assert_eq!(check(&[], &binding, None), Ok(Access { writes: true }));
        assert!(Token::read_write("").is_none());
        assert!(!format!("{:?}", tokens[0]).contains("s3cret"));
    }
}
