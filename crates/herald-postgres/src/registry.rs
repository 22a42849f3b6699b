//! `DeviceRegistry` and `TemplateStore` on tables with real columns: a
//! device row (its channels as an array, its properties as `jsonb`) plus
//! one `device_channels` row per channel, so a channel's devices are an
//! index range read one page at a time; templates one row each.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald::{
    DeviceRegistration, DeviceRegistry, InvalidToken, Os, PushBroadcast, PushTemplate, StoreError,
    StoreFuture, TemplateStore,
};
use herald_core::Tick;
use tokio_postgres::Row;

use crate::PgStore;
use crate::error::{damaged, pg};
use crate::open::Inner;
use crate::rows::{col, ms, tick};

const DEVICE_COLUMNS: &str = "d.device_id, d.registration_id, d.device_token, d.os, d.os_version, \
    d.channels, d.expiration, d.properties::text, d.registered_at";

/// Expired registrations, oldest first, at most `$2`: through the
/// primary key (`= ANY(ARRAY(…))`); with `IN (subquery)` the plan can be a
/// hash join over a scan of every device (as the message purge's was).
pub(crate) const PURGE_DEVICES: &str = "\
    DELETE FROM devices WHERE device_id = ANY(ARRAY( \
      SELECT device_id FROM devices WHERE expiration <= $1 \
      ORDER BY expiration LIMIT $2 FOR UPDATE SKIP LOCKED))";

const UPSERT_DEVICE: &str = "\
    INSERT INTO devices (device_id, registration_id, device_token, os, os_version, channels, \
      expiration, properties, registered_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9) \
    ON CONFLICT (device_id) DO UPDATE SET registration_id = EXCLUDED.registration_id, \
      device_token = EXCLUDED.device_token, os = EXCLUDED.os, os_version = EXCLUDED.os_version, \
      channels = EXCLUDED.channels, expiration = EXCLUDED.expiration, \
      properties = EXCLUDED.properties, registered_at = EXCLUDED.registered_at";

const TEMPLATE_COLUMNS: &str =
    "name, message, title, subtitle, headers::text, os, channel, segment_query";

fn text_map(json: &str, what: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(json).map_err(|e| damaged(format!("{what}: {e}")))
}

fn map_text(map: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(map).map_err(|e| StoreError::Other(Box::new(e)))
}

fn device_of(row: &Row) -> Result<Arc<DeviceRegistration>, StoreError> {
    let device_id: String = col(row, 0)?;
    let os: &str = col(row, 3)?;
    let os = Os::parse(os)
        .ok_or_else(|| damaged(format!("device {device_id:?} has unknown os {os:?}")))?;
    let properties = text_map(col(row, 7)?, &format!("device {device_id:?}'s properties"))?;
    Ok(Arc::new(DeviceRegistration {
        registration_id: col(row, 1)?,
        device_token: col(row, 2)?,
        os,
        os_version: col(row, 4)?,
        channels: col(row, 5)?,
        expiration: col::<Option<i64>>(row, 6)?.map(tick),
        properties,
        registered_at: tick(col(row, 8)?),
        device_id,
    }))
}

fn template_of(row: &Row) -> Result<Arc<PushTemplate>, StoreError> {
    let name: String = col(row, 0)?;
    let bits: i16 = col(row, 5)?;
    let os = u8::try_from(bits)
        .ok()
        .and_then(PushBroadcast::from_bits)
        .ok_or_else(|| damaged(format!("template {name:?} has audience bits {bits}")))?;
    let headers = text_map(col(row, 4)?, &format!("template {name:?}'s headers"))?;
    Ok(Arc::new(PushTemplate {
        message: col(row, 1)?,
        title: col(row, 2)?,
        subtitle: col(row, 3)?,
        headers,
        os,
        channel: col(row, 6)?,
        segment_query: col(row, 7)?,
        name,
    }))
}

impl Inner {
    async fn register(&self, r: DeviceRegistration) -> Result<(), StoreError> {
        let properties = map_text(&r.properties)?;
        let mut client = self.client().await?;
        let res = async {
            let tx = client.transaction().await.map_err(pg)?;
            // The upsert locks the device's row: concurrent registrations
            // of one device apply one after the other.
            let stmt = tx.prepare_cached(UPSERT_DEVICE).await.map_err(pg)?;
            tx.execute(
                &stmt,
                &[
                    &r.device_id,
                    &r.registration_id,
                    &r.device_token,
                    &r.os.as_str(),
                    &r.os_version,
                    &r.channels,
                    &r.expiration.map(ms),
                    &properties,
                    &ms(r.registered_at),
                ],
            )
            .await
            .map_err(pg)?;
            let stmt = tx
                .prepare_cached("DELETE FROM device_channels WHERE device_id = $1")
                .await
                .map_err(pg)?;
            tx.execute(&stmt, &[&r.device_id]).await.map_err(pg)?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO device_channels (channel, device_id) \
                     SELECT DISTINCT c, $1 FROM UNNEST($2::text[]) AS c",
                )
                .await
                .map_err(pg)?;
            tx.execute(&stmt, &[&r.device_id, &r.channels])
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)
        }
        .await;
        self.health.note(res)
    }

    async fn device(&self, device_id: &str) -> Result<Option<Arc<DeviceRegistration>>, StoreError> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.device_id = $1");
        read!(self, |client| {
            let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
            match client.query_opt(&stmt, &[&device_id]).await.map_err(pg)? {
                Some(row) => device_of(&row).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn unregister(&self, device_id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let r = async {
            let stmt = client
                .prepare_cached("DELETE FROM devices WHERE device_id = $1")
                .await
                .map_err(pg)?;
            Ok(client.execute(&stmt, &[&device_id]).await.map_err(pg)? > 0)
        }
        .await;
        self.health.note(r)
    }

    async fn channel_devices(
        &self,
        channel: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<DeviceRegistration>>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        read!(self, |client| {
            let rows = match after {
                Some(after) => {
                    let sql = format!(
                        "SELECT {DEVICE_COLUMNS} FROM device_channels c \
                         JOIN devices d ON d.device_id = c.device_id \
                         WHERE c.channel = $1 AND c.device_id > $2 \
                         ORDER BY c.device_id LIMIT $3"
                    );
                    let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
                    client.query(&stmt, &[&channel, &after, &limit]).await
                }
                None => {
                    let sql = format!(
                        "SELECT {DEVICE_COLUMNS} FROM device_channels c \
                         JOIN devices d ON d.device_id = c.device_id \
                         WHERE c.channel = $1 ORDER BY c.device_id LIMIT $2"
                    );
                    let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
                    client.query(&stmt, &[&channel, &limit]).await
                }
            }
            .map_err(pg)?;
            rows.iter()
                .map(device_of)
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    async fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> Result<Vec<bool>, StoreError> {
        let mut client = self.client().await?;
        let r = async {
            let tx = client.transaction().await.map_err(pg)?;
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM devices \
                     WHERE device_id = $1 AND device_token = $2 AND registered_at <= $3",
                )
                .await
                .map_err(pg)?;
            let mut removed = Vec::with_capacity(tokens.len());
            for t in &tokens {
                let n = tx
                    .execute(&stmt, &[&t.device_id, &t.device_token, &ms(t.seen_at)])
                    .await
                    .map_err(pg)?;
                removed.push(n > 0);
            }
            tx.commit().await.map_err(pg)?;
            Ok(removed)
        }
        .await;
        self.health.note(r)
    }

    async fn purge_expired(&self, now: Tick, limit: usize) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let r = async {
            let stmt = client.prepare_cached(PURGE_DEVICES).await.map_err(pg)?;
            let n = client
                .execute(&stmt, &[&ms(now), &limit])
                .await
                .map_err(pg)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }
        .await;
        self.health.note(r)
    }

    async fn put_template(&self, t: PushTemplate) -> Result<(), StoreError> {
        let headers = map_text(&t.headers)?;
        let client = self.client().await?;
        let r = async {
            let stmt = client
                .prepare_cached(
                    "INSERT INTO templates (name, message, title, subtitle, headers, os, channel, \
                       segment_query) \
                     VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) \
                     ON CONFLICT (name) DO UPDATE SET message = EXCLUDED.message, \
                       title = EXCLUDED.title, subtitle = EXCLUDED.subtitle, \
                       headers = EXCLUDED.headers, os = EXCLUDED.os, \
                       channel = EXCLUDED.channel, segment_query = EXCLUDED.segment_query",
                )
                .await
                .map_err(pg)?;
            client
                .execute(
                    &stmt,
                    &[
                        &t.name,
                        &t.message,
                        &t.title,
                        &t.subtitle,
                        &headers,
                        &i16::from(t.os.bits()),
                        &t.channel,
                        &t.segment_query,
                    ],
                )
                .await
                .map_err(pg)
                .map(|_| ())
        }
        .await;
        self.health.note(r)
    }

    async fn template(&self, name: &str) -> Result<Option<Arc<PushTemplate>>, StoreError> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = $1");
        read!(self, |client| {
            let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
            match client.query_opt(&stmt, &[&name]).await.map_err(pg)? {
                Some(row) => template_of(&row).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn delete_template(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let r = async {
            let stmt = client
                .prepare_cached("DELETE FROM templates WHERE name = $1")
                .await
                .map_err(pg)?;
            Ok(client.execute(&stmt, &[&name]).await.map_err(pg)? > 0)
        }
        .await;
        self.health.note(r)
    }

    async fn list_templates(&self, os: Option<Os>) -> Result<Vec<Arc<PushTemplate>>, StoreError> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name");
        read!(self, |client| {
            let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
            let rows = client.query(&stmt, &[]).await.map_err(pg)?;
            let mut list = Vec::with_capacity(rows.len());
            for row in &rows {
                let t = template_of(row)?;
                if os.is_none_or(|os| t.targets(os)) {
                    list.push(t);
                }
            }
            Ok(list)
        })
    }
}

impl DeviceRegistry for PgStore {
    fn register(&self, registration: DeviceRegistration) -> StoreFuture<'_, ()> {
        Box::pin(self.inner.register(registration))
    }
    fn device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<DeviceRegistration>>> {
        Box::pin(self.inner.device(device_id))
    }
    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.inner.unregister(device_id))
    }
    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>> {
        Box::pin(self.inner.channel_devices(channel, after, limit))
    }
    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(self.inner.remove_invalid(tokens))
    }
    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(self.inner.purge_expired(now, limit))
    }
}

impl TemplateStore for PgStore {
    fn put_template(&self, template: PushTemplate) -> StoreFuture<'_, ()> {
        Box::pin(self.inner.put_template(template))
    }
    fn template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Arc<PushTemplate>>> {
        Box::pin(self.inner.template(name))
    }
    fn delete_template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.inner.delete_template(name))
    }
    fn list_templates(&self, os: Option<Os>) -> StoreFuture<'_, Vec<Arc<PushTemplate>>> {
        Box::pin(self.inner.list_templates(os))
    }
}
