//! Local identities: the key pairs that may sign requests, and the caller a verified signature
//! stands for.
//!
//! In AWS a signature names an access key, IAM knows whose key it is, and Lattice passes that
//! principal on. Trellis has no IAM, so the config's `identities:` list plays its part: each
//! entry is an IAM principal (a user, a role or an account root) with its key pair and, for a
//! role, the session it appears as.

use std::fmt;
use std::sync::Arc;

use crate::policy::Policy;

/// The access key id and secret that sign as `arn:aws:iam::<account>:user/test` when a config
/// lists no identities: the convention of local AWS emulators, so `curl --aws-sigv4` works out
/// of the box.
pub const DEFAULT_KEY: &str = "test";

/// Why an identity's ARN was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "{0:?} is not an IAM principal ARN: expected arn:aws:iam::<12-digit account>:user/<name>, :role/<name> or :root"
    )]
    BadArn(String),
    #[error("sessionName is for roles: {0} is not a role")]
    SessionOfNonRole(String),
    #[error(
        "sessionName {0:?} is not a valid role session name (2-64 of letters, digits and =,.@-_)"
    )]
    BadSessionName(String),
}

/// The kind of principal, as the `aws:PrincipalType` condition key names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    /// An account's root user (`arn:aws:iam::<account>:root`).
    Account,
    /// An IAM user.
    User,
    /// A role; with a session name, an assumed-role session.
    AssumedRole,
    /// An unsigned request.
    Anonymous,
}

impl PrincipalType {
    /// The value of `aws:PrincipalType`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::Account => "Account",
            PrincipalType::User => "User",
            PrincipalType::AssumedRole => "AssumedRole",
            PrincipalType::Anonymous => "Anonymous",
        }
    }
}

/// One entry of `identities:`: who signs with which key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The IAM principal: `arn:aws:iam::<account>:user/<name>`, `…:role/<name>` or `…:root`.
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For a role: the session callers appear as (`arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    pub session_name: Option<String>,
    /// When set, requests must carry it in `x-amz-security-token` (temporary credentials).
    pub session_token: Option<String>,
    pub principal_org_id: Option<String>,
    /// Principal tags: `aws:PrincipalTag/<key>` and `x-amzn-lattice-identity-tags`.
    pub tags: Vec<(String, String)>,
    /// The identity-based policy (a [`crate::policy::Kind::Identity`] policy): when set, it
    /// must allow what the caller invokes on an `AWS_IAM` resource; when not, the identity may
    /// invoke, as if its IAM policy allowed `vpc-lattice-svcs:Invoke`.
    pub policy: Option<Arc<Policy>>,
}

/// Secrets stay out of debug output (and so out of logs and panics).
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("arn", &self.arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_name", &self.session_name)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("principal_org_id", &self.principal_org_id)
            .field("tags", &self.tags)
            .field("policy", &self.policy.as_ref().map(|p| p.normalised()))
            .finish()
    }
}

impl Identity {
    /// The identity that signs when a config lists none: key pair `test`/`test`, user `test` in
    /// `account`.
    pub fn default_for(account: &str) -> Identity {
        Identity {
            arn: format!("arn:aws:iam::{account}:user/test"),
            access_key_id: DEFAULT_KEY.to_string(),
            secret_access_key: DEFAULT_KEY.to_string(),
            session_name: None,
            session_token: None,
            principal_org_id: None,
            tags: Vec::new(),
            policy: None,
        }
    }

    /// Checks the ARN (and that a session name belongs to a role), so a config with a bad
    /// identity is refused when it loads rather than when a request arrives.
    pub fn validate(&self) -> Result<(), IdentityError> {
        let principal = IamArn::parse(&self.arn)?;
        if let Some(session) = &self.session_name {
            if principal.kind != PrincipalType::AssumedRole {
                return Err(IdentityError::SessionOfNonRole(self.arn.clone()));
            }
            let valid_char = |c: char| c.is_ascii_alphanumeric() || "=,.@-_".contains(c);
            if !(2..=64).contains(&session.len()) || !session.chars().all(valid_char) {
                return Err(IdentityError::BadSessionName(session.clone()));
            }
        }
        Ok(())
    }

    /// The caller a request signed with this identity's key stands for.
    pub fn caller(&self) -> Result<Caller, IdentityError> {
        self.validate()?;
        let principal = IamArn::parse(&self.arn)?;
        let arn = match (&self.session_name, principal.kind) {
            (Some(session), PrincipalType::AssumedRole) => format!(
                "arn:{}:sts::{}:assumed-role/{}/{session}",
                principal.partition, principal.account, principal.name
            ),
            _ => self.arn.clone(),
        };
        Ok(Caller {
            arn,
            iam_arn: self.arn.clone(),
            account: principal.account.to_string(),
            principal_type: principal.kind,
            session_name: self.session_name.clone(),
            org_id: self.principal_org_id.clone(),
            tags: self.tags.clone(),
            policy: self.policy.clone(),
        })
    }
}

/// The principal of a verified request: what policies match, the access log records and the
/// identity headers carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal as AWS shows it: the user's or root's ARN, or for a role session
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// The IAM ARN it comes from (`…:role/<name>` for a session): a policy naming the role
    /// matches its sessions.
    pub iam_arn: String,
    /// The 12-digit account id: a policy naming the account matches every principal in it.
    pub account: String,
    pub principal_type: PrincipalType,
    pub session_name: Option<String>,
    pub org_id: Option<String>,
    pub tags: Vec<(String, String)>,
    /// The identity's own policy, checked before the auth policies ([`crate::authorize`]).
    pub policy: Option<Arc<Policy>>,
}

/// An ARN's six `:`-separated parts (`arn`, partition, service, region, account, resource; the
/// resource keeps any further `:`), or `None` when there are fewer.
pub(crate) fn arn_parts(text: &str) -> Option<[&str; 6]> {
    let mut parts = text.splitn(6, ':');
    let mut out = [""; 6];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

/// The parts of an IAM principal ARN.
struct IamArn<'a> {
    partition: &'a str,
    account: &'a str,
    kind: PrincipalType,
    /// The user's or role's name (the last segment of its path); empty for root.
    name: &'a str,
}

impl<'a> IamArn<'a> {
    fn parse(arn: &'a str) -> Result<IamArn<'a>, IdentityError> {
        let bad = || IdentityError::BadArn(arn.to_string());
        let Some(["arn", partition, "iam", "", account, resource]) = arn_parts(arn) else {
            return Err(bad());
        };
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let (kind, path) = match resource.split_once('/') {
            None if resource == "root" => {
                return Ok(IamArn {
                    partition,
                    account,
                    kind: PrincipalType::Account,
                    name: "",
                });
            }
            Some(("user", path)) => (PrincipalType::User, path),
            Some(("role", path)) => (PrincipalType::AssumedRole, path),
            _ => return Err(bad()),
        };
        let name = path.rsplit('/').next().unwrap_or_default();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c);
        if name.is_empty() || name.len() > 64 || !path.chars().all(valid_char) {
            return Err(bad());
        }
        Ok(IamArn {
            partition,
            account,
            kind,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(arn: &str, session: Option<&str>) -> Identity {
        Identity {
            arn: arn.to_string(),
            session_name: session.map(str::to_string),
            ..Identity::default_for("123456789012")
        }
    }

    #[test]
    fn a_role_with_a_session_signs_as_the_assumed_role_session() {
        let caller = identity("arn:aws:iam::123456789012:role/ordering", Some("checkout"))
            .caller()
            .unwrap();
        assert_eq!(
            caller.arn,
            "arn:aws:sts::123456789012:assumed-role/ordering/checkout"
        );
        assert_eq!(caller.iam_arn, "arn:aws:iam::123456789012:role/ordering");
        assert_eq!(caller.account, "123456789012");
        assert_eq!(caller.principal_type, PrincipalType::AssumedRole);
    }

    #[test]
    fn users_roles_with_paths_and_root_are_principals() {
        for (arn, kind) in [
            ("arn:aws:iam::123456789012:user/test", PrincipalType::User),
            (
                "arn:aws:iam::123456789012:role/team/app",
                PrincipalType::AssumedRole,
            ),
            ("arn:aws:iam::123456789012:root", PrincipalType::Account),
        ] {
            let caller = identity(arn, None).caller().unwrap();
            assert_eq!(caller.arn, arn);
            assert_eq!(caller.principal_type, kind, "{arn}");
        }
        let caller = identity("arn:aws:iam::123456789012:role/team/app", Some("s1"))
            .caller()
            .unwrap();
        assert_eq!(caller.arn, "arn:aws:sts::123456789012:assumed-role/app/s1");
    }

    #[test]
    fn bad_arns_and_sessions_are_refused() {
        for arn in [
            "",
            "arn:aws:iam::12345:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:group/g",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:user/a b",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam:us-east-1:123456789012:user/x",
        ] {
            assert_eq!(
                identity(arn, None).validate(),
                Err(IdentityError::BadArn(arn.to_string())),
                "{arn}"
            );
        }
        assert!(matches!(
            identity("arn:aws:iam::123456789012:user/x", Some("s1")).validate(),
            Err(IdentityError::SessionOfNonRole(_))
        ));
        assert!(matches!(
            identity("arn:aws:iam::123456789012:role/x", Some("bad session")).validate(),
            Err(IdentityError::BadSessionName(_))
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut id = identity("arn:aws:iam::123456789012:user/x", None);
        id.secret_access_key = "s3cr3t-value".into();
        id.session_token = Some("tok3n-value".into());
        let shown = format!("{id:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok3n"),
            "{shown}"
        );
    }
}
