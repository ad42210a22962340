//! The permissions of trdscreen, each granted by an OAuth 2.0 scope of the same name
//! (docs/security.md), and the caller a verified token names.

use crate::error::{Error, Result};
use crate::summary;
use std::fmt;

/// What a method needs. The scope that grants it is [`Permission::scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `screening.read`: screen one patient read from the FHIR server (`ScreenPatient` without
    /// write-back), and read that patient's result.
    ScreeningRead,
    /// `screening.write`: write the Flag and CarePlan back into the chart (`ScreenPatient` or a
    /// population with write-back; needs `screening.read` or `population.screen` as well).
    ScreeningWrite,
    /// `population.screen`: screen a cohort (`ScreenPopulation`).
    PopulationScreen,
    /// `bundle.evaluate`: evaluate a Bundle the caller sends (`EvaluateBundle`); no FHIR server
    /// is read.
    BundleEvaluate,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Permission::ScreeningRead,
        Permission::ScreeningWrite,
        Permission::PopulationScreen,
        Permission::BundleEvaluate,
    ];

    /// The OAuth 2.0 scope that grants this permission.
    pub const fn scope(self) -> &'static str {
        match self {
            Permission::ScreeningRead => "screening.read",
            Permission::ScreeningWrite => "screening.write",
            Permission::PopulationScreen => "population.screen",
            Permission::BundleEvaluate => "bundle.evaluate",
        }
    }

    /// The permission a scope grants; `None` for any other scope (`openid`, another API's).
    pub fn from_scope(scope: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.scope() == scope)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scope())
    }
}

/// A permission's scope is a fixed word of this program.
impl crate::error::Ours for Permission {}

/// A set of [`Permission`]s.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    /// The permissions granted by the scopes of a token: `scope` (a space-separated string,
    /// RFC 9068) and `scp` (a list, as some identity providers send). Scopes this program does not
    /// know grant nothing.
    pub fn from_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Permissions {
        scopes
            .into_iter()
            .filter_map(Permission::from_scope)
            .fold(Permissions::NONE, Permissions::with)
    }

    /// The permissions of an RFC 6749 `scope` string (space-separated).
    pub fn from_scope_string(scope: &str) -> Permissions {
        Permissions::from_scopes(scope.split(' ').filter(|s| !s.is_empty()))
    }

    #[must_use]
    pub const fn with(self, permission: Permission) -> Permissions {
        Permissions(self.0 | permission.bit())
    }

    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Who asks, as a verified token or client certificate names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `client_id` (RFC 9068), else its `sub`, or the client certificate's URI or DNS
    /// name: the identity the audit trail records.
    /// Checked to be 1 to 255 printable ASCII characters; still the issuer's text, so it goes to
    /// the audit trail only, never into an error or a log line.
    pub id: String,
    /// The issuer that vouched for the caller.
    pub issuer: String,
    pub permissions: Permissions,
}

impl Caller {
    /// `Ok` when the caller holds `permission`, else `PermissionDenied` naming the scope needed
    /// (a fixed word) and nothing of the caller.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(summary!(
                "the caller is not granted the scope {}",
                permission
            )))
        }
    }

    /// [`require`](Self::require) for each permission, refusing on the first missing one.
    pub fn require_all(&self, permissions: &[Permission]) -> Result<()> {
        permissions.iter().try_for_each(|p| self.require(*p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_is_granted_by_its_own_scope_and_no_other() {
        for p in Permission::ALL {
            assert_eq!(Permission::from_scope(p.scope()), Some(p));
            let granted = Permissions::from_scope_string(p.scope());
            assert_eq!(granted.iter().collect::<Vec<_>>(), vec![p]);
        }
        assert_eq!(Permission::from_scope("screening"), None);
        assert_eq!(
            Permission::from_scope("SCREENING.READ"),
            None,
            "scopes are case-sensitive"
        );
        assert_eq!(Permission::from_scope("system/*.read"), None);
    }

    #[test]
    fn a_scope_string_grants_the_known_scopes_and_ignores_the_rest() {
        let granted =
            Permissions::from_scope_string("openid  screening.read other.api bundle.evaluate ");
        assert!(granted.contains(Permission::ScreeningRead));
        assert!(granted.contains(Permission::BundleEvaluate));
        assert!(!granted.contains(Permission::ScreeningWrite));
        assert!(!granted.contains(Permission::PopulationScreen));
        assert!(Permissions::from_scope_string("").is_empty());
        assert!(Permissions::from_scope_string("screening.read.extra").is_empty());
    }

    #[test]
    fn a_caller_without_a_permission_is_refused_in_fixed_words() {
        let caller = Caller {
            id: "clinic-app".into(),
            issuer: "https://idp.example".into(),
            permissions: Permissions::from_scope_string("screening.read"),
        };
        assert_eq!(caller.require(Permission::ScreeningRead), Ok(()));
        let refused = caller.require(Permission::ScreeningWrite).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "permission denied: the caller is not granted the scope screening.write"
        );
        assert!(
            caller
                .require_all(&[Permission::ScreeningRead, Permission::PopulationScreen])
                .is_err()
        );
    }
}
