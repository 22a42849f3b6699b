//! The cluster settings: where the messages live (`store`), what carries
//! runs between nodes (`bus`), and this node's name (`node_id`).

use std::fmt;

use anyhow::bail;

/// A service address with credentials (`postgres://user:pass@host/db`,
/// `redis://:pass@host:6379`): used as given, printed with its password
/// hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// The URL as given (with its password): for connecting, never for
    /// logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its scheme (`postgres`, `redis`, …).
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(s, _)| s)
    }
}

impl fmt::Display for ServiceUrl {
    /// The URL with the password of its user info replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str(&self.0);
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
                let hidden = if user_info.contains(':') { ":***" } else { "" };
                write!(f, "{scheme}://{user}{hidden}@{host}{tail}")
            }
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Where the apps' messages, device registrations and templates live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded redb store, one file per app in the data directory:
    /// one node.
    #[default]
    Redb,
    /// A PostgreSQL database shared by every node (one schema per app).
    Postgres(ServiceUrl),
}

impl StoreLocation {
    /// Parses the `store` setting: `redb`, or a `postgres://` (or
    /// `postgresql://`) URL.
    ///
    /// # Errors
    ///
    /// Anything else, said plainly.
    pub fn parse(value: &str) -> anyhow::Result<Self> {
        let v = value.trim();
        if v == "redb" {
            return Ok(Self::Redb);
        }
        if (v.starts_with("postgres://") || v.starts_with("postgresql://")) && !has_junk(v) {
            return Ok(Self::Postgres(ServiceUrl(v.to_owned())));
        }
        bail!(
            "{:?} is not a store: use \"redb\" (the embedded store, the default) or a postgres:// URL",
            ServiceUrl(v.to_owned()).to_string()
        )
    }

    /// Whether several nodes can share it.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redb => f.write_str("redb"),
            Self::Postgres(url) => url.fmt(f),
        }
    }
}

/// Parses the `bus` setting: a `redis://` or `postgres://` URL (TLS to
/// Redis, `rediss://`, is not supported yet: refused with that reason).
///
/// # Errors
///
/// Anything else, said plainly.
pub(crate) fn parse_bus(value: &str) -> anyhow::Result<ServiceUrl> {
    let v = value.trim();
    if v.starts_with("rediss://") {
        bail!("TLS to Redis (rediss://) is not supported yet: use redis:// on a trusted network");
    }
    let ok = ["redis://", "postgres://", "postgresql://"]
        .iter()
        .any(|s| v.starts_with(s));
    if ok && !has_junk(v) {
        return Ok(ServiceUrl(v.to_owned()));
    }
    bail!(
        "{:?} is not a bus: use a redis:// or postgres:// URL (unset: the store's own)",
        ServiceUrl(v.to_owned()).to_string()
    )
}

/// Checks the `node_id` setting: 1 to 64 characters from A-Z, a-z, 0-9,
/// `-`, `_`, `.`.
///
/// # Errors
///
/// Anything else.
pub(crate) fn check_node_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("invalid node id {id:?}: use 1 to 64 characters from A-Z, a-z, 0-9, '-', '_', '.'");
    }
    Ok(())
}

fn has_junk(v: &str) -> bool {
    v.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_print_without_their_password() {
        let show = |s: &str| ServiceUrl(s.to_owned()).to_string();
        assert_eq!(
            show("postgres://herald:s3cret@db:5432/herald?sslmode=disable"),
            "postgres://herald:***@db:5432/herald?sslmode=disable"
        );
        assert_eq!(show("redis://:pw@cache:6379"), "redis://:***@cache:6379");
        assert_eq!(
            show("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(show("redis://127.0.0.1"), "redis://127.0.0.1");
        assert_eq!(show("postgres://a:b@c@h/d"), "postgres://a:***@h/d");
        let debug = format!("{:?}", ServiceUrl("postgres://u:p@h/d".into()));
        assert!(!debug.contains(":p@"), "{debug}");
    }

    #[test]
    fn stores_buses_and_node_ids_parse_or_say_why_not() {
        assert_eq!(StoreLocation::parse("redb").unwrap(), StoreLocation::Redb);
        let pg = StoreLocation::parse(" postgres://u:pw@h/d ").unwrap();
        assert!(pg.is_shared());
        assert_eq!(pg.to_string(), "postgres://u:***@h/d");
        let e = StoreLocation::parse("mysql://u:secret@h/d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("redb") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("secret"), "the password is not echoed: {e}");
        assert!(StoreLocation::parse("postgres://h/d x").is_err());
        assert_eq!(parse_bus("redis://h:6379").unwrap().scheme(), "redis");
        assert_eq!(parse_bus("postgres://h/d").unwrap().scheme(), "postgres");
        assert!(parse_bus("nats://h").is_err());
        check_node_id("node-1.eu_west").unwrap();
        for bad in ["", "a b", "ü", &"x".repeat(65)] {
            assert!(check_node_id(bad).is_err(), "{bad:?}");
        }
    }
}
