//! The development app a cluster's nodes share ([`shared_dev_app`]).

use std::time::Duration;

use tokio_postgres::NoTls;

use crate::error::PgStoreError;

/// The schema of what the cluster's nodes share beyond one app's schema.
pub const CLUSTER_SCHEMA: &str = "herald_cluster";

/// The development app of a cluster whose nodes share the database at
/// `url`: the first caller's `(id, key)` is recorded (in the one-row table
/// `herald_cluster.dev_app`, the schema and table created if missing), and
/// every caller, the first included, gets the recorded pair back. So nodes
/// that start with a generated development app agree on one, whichever
/// starts first; a later node's proposal is ignored.
///
/// One transaction under a transaction-scoped advisory lock, so callers
/// that start together do not race on creating the table.
///
/// # Errors
///
/// A URL that does not parse, a server that cannot be reached, or a
/// statement that fails (for example, no right to create the schema).
pub async fn shared_dev_app(
    url: &str,
    id: &str,
    key: &str,
) -> Result<(String, String), PgStoreError> {
    dev_app_in(url, CLUSTER_SCHEMA, id, key).await
}

/// [`shared_dev_app`] in `schema` (checked, and quoted): the tests use a
/// schema of their own, so they never touch a real cluster's app.
pub(crate) async fn dev_app_in(
    url: &str,
    schema: &str,
    id: &str,
    key: &str,
) -> Result<(String, String), PgStoreError> {
    crate::check_schema(schema)?;
    let mut config: tokio_postgres::Config = url.parse().map_err(PgStoreError::Url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("herald");
    }
    let (mut client, connection) = config.connect(NoTls).await.map_err(PgStoreError::Connect)?;
    let conn = tokio::spawn(connection);
    let pair = async {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('herald-postgres dev_app ' || $1))",
            &[&schema],
        )
        .await?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS \"{schema}\".dev_app (
                 one boolean PRIMARY KEY DEFAULT true CHECK (one),
                 id text NOT NULL,
                 key text NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO \"{schema}\".dev_app (id, key) VALUES ($1, $2) \
                 ON CONFLICT (one) DO NOTHING"
            ),
            &[&id, &key],
        )
        .await?;
        let row = tx
            .query_one(&format!("SELECT id, key FROM \"{schema}\".dev_app"), &[])
            .await?;
        let pair: (String, String) = (row.try_get(0)?, row.try_get(1)?);
        tx.commit().await?;
        Ok(pair)
    }
    .await
    .map_err(PgStoreError::DevApp);
    drop(client);
    let _ = conn.await;
    pair
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a schema of its own (dropped after), so a real cluster's app is
    /// never touched: concurrent callers with different proposals get one
    /// of them, the same; a later proposal is ignored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_get_the_first_recorded_pair() {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                // Past the test harness's capture, as the integration
                // tests' support does.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: herald-postgres unit tests that need PostgreSQL: DATABASE_URL is not set; \
                     set it to a PostgreSQL database, e.g. \
                     DATABASE_URL=postgres://postgres@127.0.0.1:5432/test"
                );
                return;
            }
        };
        let schema = format!("herald_test_dev_app_{}", std::process::id());
        let mut callers = Vec::new();
        for n in 0..4 {
            let (url, schema) = (url.clone(), schema.clone());
            callers.push(tokio::spawn(async move {
                dev_app_in(&url, &schema, &format!("app-{n}"), &format!("key-{n}")).await
            }));
        }
        let mut answers = Vec::new();
        for c in callers {
            answers.push(c.await.unwrap().expect("dev_app_in"));
        }
        let later = dev_app_in(&url, &schema, "app-late", "key-late").await;

        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        let conn = tokio::spawn(conn);
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM \"{schema}\".dev_app"), &[])
            .await
            .unwrap()
            .get(0);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
        drop(client);
        let _ = conn.await;

        let first = answers[0].clone();
        assert!(
            answers.iter().all(|a| *a == first),
            "every caller gets the same pair: {answers:?}"
        );
        let n = first.0.strip_prefix("app-").expect("one of the proposals");
        assert_eq!(first.1, format!("key-{n}"), "a proposal's own id and key");
        assert_eq!(later.unwrap(), first, "a later proposal is ignored");
        assert_eq!(rows, 1, "one row");
    }
}
