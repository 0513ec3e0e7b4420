//! PLAIN (RFC 4616): `authzid NUL authcid NUL password` in one message, checked against the
//! user's SCRAM credentials so that Spate stores no password.
//!
//! The password is accepted if it matches the user's SCRAM-SHA-512 or SCRAM-SHA-256
//! credential. A user with neither costs the same key derivation against a fake credential, so
//! the time taken does not tell whether the user exists. As in Kafka's `PlainSaslServer`, an
//! authorization id must be empty or equal to the user, and the user name and password must not
//! be empty. [`check_password`] is the password check itself, shared with HTTP Basic
//! authentication (`crate::http`).

use super::scram::credential_or_fake;
use super::{AuthError, CredentialStore, Mechanism, ScramCredential, Step};

/// The credentials PLAIN checks a password against, in order.
const CHECKED: [Mechanism; 2] = [Mechanism::ScramSha512, Mechanism::ScramSha256];

/// Runs the whole PLAIN exchange on the client's one message.
pub(super) fn authenticate(
    client_bytes: &[u8],
    store: &dyn CredentialStore,
    attempted_user: &mut Option<String>,
) -> Result<Step, AuthError> {
    let malformed = |reason: &str| AuthError::Malformed {
        mechanism: Mechanism::Plain,
        reason: reason.to_owned(),
    };
    let message = std::str::from_utf8(client_bytes).map_err(|_| malformed("not UTF-8"))?;
    let mut fields = message.split('\0');
    let (Some(authorization_id), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(
            "expected three NUL-separated fields: authzid, user name, password",
        ));
    };
    if user.is_empty() {
        return Err(malformed("user name not specified"));
    }
    *attempted_user = Some(user.to_owned());
    if password.is_empty() {
        return Err(malformed("password not specified"));
    }
    // Checked before the password, so that it says nothing about the user or the password.
    if !authorization_id.is_empty() && authorization_id != user {
        return Err(AuthError::AuthorizationIdMismatch {
            mechanism: Mechanism::Plain,
            authorization_id: authorization_id.to_owned(),
            user: user.to_owned(),
        });
    }

    if !matches!(
        check_password(store, user, password),
        PasswordCheck::Matched(_)
    ) {
        return Err(AuthError::InvalidCredentials {
            mechanism: Mechanism::Plain,
        });
    }
    Ok(Step::Done {
        response: Vec::new(),
        principal: user.to_owned(),
        session_lifetime_ms: None,
    })
}

/// What [`check_password`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password matches this stored credential of the user.
    Matched(ScramCredential),
    /// The user has credentials; the password matches none of them.
    WrongPassword,
    /// The user has no usable credential.
    UnknownUser,
}

/// Checks `password` against `user`'s SCRAM credentials, SCRAM-SHA-512 first, stopping at the
/// first that matches. An unknown user costs the same key derivation as a user with one
/// credential, against a credential no password matches, so the time taken does not tell
/// whether the user exists; callers must answer [`PasswordCheck::WrongPassword`] and
/// [`PasswordCheck::UnknownUser`] alike (the difference is for the server's log).
///
/// Costs one PBKDF2 derivation (thousands of HMACs) per credential tried: run it off async
/// workers.
pub fn check_password(store: &dyn CredentialStore, user: &str, password: &str) -> PasswordCheck {
    let mut known_user = false;
    for mechanism in CHECKED {
        if let Some((credential, true)) = credential_or_fake(store, user, mechanism) {
            known_user = true;
            if credential.verify_password(password) {
                return PasswordCheck::Matched(credential);
            }
        }
    }
    if known_user {
        return PasswordCheck::WrongPassword;
    }
    // The same work as for a real user, against a credential no password matches.
    if let Some((fake, _)) = credential_or_fake(store, user, CHECKED[0]) {
        let _ = fake.verify_password(password);
    }
    PasswordCheck::UnknownUser
}

#[cfg(test)]
mod tests {
    use super::super::Authenticator;
    use super::super::test_support::MemStore;
    use super::*;

    fn plain(store: MemStore, message: &[u8]) -> Result<Step, AuthError> {
        Authenticator::new(Mechanism::Plain, store.shared(), None).step(message)
    }

    fn done(principal: &str) -> Result<Step, AuthError> {
        Ok(Step::Done {
            response: Vec::new(),
            principal: principal.to_owned(),
            session_lifetime_ms: None,
        })
    }

    const INVALID: AuthError = AuthError::InvalidCredentials {
        mechanism: Mechanism::Plain,
    };

    #[test]
    fn right_password_authenticates_against_the_sha512_credential() {
        let store = MemStore::with("alice", "s3cret", &[Mechanism::ScramSha512]);
        assert_eq!(plain(store, b"\0alice\0s3cret"), done("alice"));
    }

    #[test]
    fn right_password_authenticates_against_a_sha256_only_credential() {
        let store = MemStore::with("alice", "s3cret", &[Mechanism::ScramSha256]);
        assert_eq!(plain(store, b"\0alice\0s3cret"), done("alice"));
    }

    #[test]
    fn either_credential_of_a_user_accepts_its_password() {
        let mut store = MemStore::with("alice", "old", &[Mechanism::ScramSha512]);
        store.add("alice", "new", Mechanism::ScramSha256);
        assert_eq!(plain(store, b"\0alice\0new"), done("alice"));
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_identically() {
        let store = || MemStore::with("alice", "s3cret", &[Mechanism::ScramSha512]);
        let wrong_password = plain(store(), b"\0alice\0guess").expect_err("refused");
        let unknown_user = plain(store(), b"\0mallory\0s3cret").expect_err("refused");
        assert_eq!(wrong_password, INVALID);
        assert_eq!(wrong_password, unknown_user);
        assert_eq!(wrong_password.to_string(), unknown_user.to_string());
        assert_eq!(
            unknown_user.client_message(false),
            "Authentication failed: Invalid username or password"
        );
    }

    #[test]
    fn authorization_id_equal_to_the_user_is_accepted() {
        let store = MemStore::with("alice", "s3cret", &[Mechanism::ScramSha512]);
        assert_eq!(plain(store, b"alice\0alice\0s3cret"), done("alice"));
    }

    #[test]
    fn authorization_id_of_another_user_is_refused() {
        let store = MemStore::with("alice", "s3cret", &[Mechanism::ScramSha512]);
        assert_eq!(
            plain(store, b"admin\0alice\0s3cret"),
            Err(AuthError::AuthorizationIdMismatch {
                mechanism: Mechanism::Plain,
                authorization_id: "admin".to_owned(),
                user: "alice".to_owned(),
            })
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        let cases: &[&[u8]] = &[
            b"",
            b"alice",
            b"\0alice",
            b"\0alice\0",
            b"\0\0s3cret",
            b"\0alice\0s3cret\0",
            b"\0al\xffice\0s3cret",
        ];
        for &case in cases {
            let store = MemStore::with("alice", "s3cret", &[Mechanism::ScramSha512]);
            let error = plain(store, case).expect_err("refused");
            assert!(
                matches!(error, AuthError::Malformed { .. }),
                "{case:?}: {error:?}"
            );
        }
    }

    #[test]
    fn the_attempted_user_is_known_after_a_failure() {
        let mut auth = Authenticator::new(Mechanism::Plain, MemStore::default().shared(), None);
        assert_eq!(auth.step(b"\0mallory\0guess"), Err(INVALID));
        assert_eq!(auth.attempted_user(), Some("mallory"));
    }
}
