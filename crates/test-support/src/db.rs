//! Scratch PostgreSQL databases, created through `DATABASE_URL` and dropped on drop.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::time::Duration;

/// The PostgreSQL URL every database test needs: a role that may CREATE DATABASE.
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "DATABASE_URL is not set: this needs PostgreSQL with a role that may create \
             databases. Run `export DATABASE_URL=$(bash script/pg.sh)` from the repository \
             root first."
        ),
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// Why a scratch database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScratchDbError {
    /// The admin URL did not take a connection.
    #[error("cannot connect to DATABASE_URL: {0}")]
    Connect(#[source] sqlx::Error),
    /// A statement failed (most often: the role may not create databases).
    #[error("{sql} (the role needs CREATEDB): {source}")]
    Statement {
        /// The statement.
        sql: String,
        /// The server's answer.
        source: sqlx::Error,
    },
}

/// A database of its own for one test or benchmark run, dropped (with a few tries) when this
/// is dropped, unless [`ScratchDb::keep`] was called.
pub struct ScratchDb {
    /// The database's name.
    pub name: String,
    /// Its URL (the admin URL with this database's name).
    pub url: String,
    admin_url: String,
    keep: bool,
}

impl ScratchDb {
    /// A new empty database named after `tag` and made unique, through [`database_url`].
    pub async fn create(tag: &str) -> Self {
        let name = crate::unique(tag).to_ascii_lowercase();
        Self::try_create_named(&database_url(), &name)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Database `name` through `admin_url`, dropped first if it exists (a run killed before
    /// its cleanup leaves one behind). `name` must be a plain identifier of the caller's.
    pub async fn try_create_named(admin_url: &str, name: &str) -> Result<Self, ScratchDbError> {
        let mut conn = PgConnection::connect(admin_url)
            .await
            .map_err(ScratchDbError::Connect)?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await
                .map_err(|source| ScratchDbError::Statement { sql, source })?;
        }
        let _ = conn.close().await;
        Ok(Self {
            name: name.to_string(),
            url: with_database(admin_url, name),
            admin_url: admin_url.to_string(),
            keep: false,
        })
    }

    /// Leaves the database in place when this is dropped; returns its name.
    pub fn keep(&mut self) -> &str {
        self.keep = true;
        &self.name
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a test's runtime, which cannot be blocked on: a thread with its
        // own runtime does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // A few tries: FORCE cannot end every session at once (e.g. autovacuum's), and a
                // busy shared server may refuse a connection for a moment.
                for _ in 0..10 {
                    if let Ok(mut c) = PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let done = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut c).await;
                        let _ = c.close().await;
                        if done.is_ok() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_name() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/medrec", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/medrec?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
