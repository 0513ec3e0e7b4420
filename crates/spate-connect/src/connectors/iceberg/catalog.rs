//! Iceberg's JDBC catalog (`org.apache.iceberg.jdbc.JdbcCatalog`) in PostgreSQL: one row per
//! table in `iceberg_tables` pointing at its current metadata file, swapped with a
//! compare-and-set UPDATE, the commit point of every snapshot. The same tables pyiceberg's
//! `SqlCatalog` and Iceberg's Java `JdbcCatalog` (schema V1) read and write, so Spark, Trino and
//! pyiceberg find the tables the sink makes.

use tokio_postgres::Client;

/// `iceberg_type` of a table row.
const TABLE_TYPE: &str = "TABLE";

/// A connection to the catalog's database.
pub(crate) struct JdbcCatalog {
    client: Client,
    name: String,
}

fn db_error(context: &str, e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{context}: {}", db.message()),
        None => format!("{context}: {e}"),
    }
}

impl JdbcCatalog {
    /// Connects and makes the catalog's tables if they are missing.
    pub(crate) async fn connect(
        config: tokio_postgres::Config,
        name: &str,
    ) -> Result<JdbcCatalog, String> {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| db_error("connecting to the catalog database", &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("the Iceberg catalog's connection ended: {e}");
            }
        });
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS iceberg_tables (
                    catalog_name VARCHAR(255) NOT NULL,
                    table_namespace VARCHAR(255) NOT NULL,
                    table_name VARCHAR(255) NOT NULL,
                    metadata_location VARCHAR(1000),
                    previous_metadata_location VARCHAR(1000),
                    iceberg_type VARCHAR(5),
                    PRIMARY KEY (catalog_name, table_namespace, table_name));
                 CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
                    catalog_name VARCHAR(255) NOT NULL,
                    namespace VARCHAR(255) NOT NULL,
                    property_key VARCHAR(255) NOT NULL,
                    property_value VARCHAR(1000),
                    PRIMARY KEY (catalog_name, namespace, property_key));",
            )
            .await
            .map_err(|e| db_error("creating the catalog's tables", &e))?;
        Ok(JdbcCatalog {
            client,
            name: name.to_string(),
        })
    }

    /// The current metadata location of `namespace.table`, if the table exists.
    pub(crate) async fn load(
        &self,
        namespace: &str,
        table: &str,
    ) -> Result<Option<String>, String> {
        let rows = self
            .client
            .query(
                "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $1 \
                 AND table_namespace = $2 AND table_name = $3 \
                 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
                &[&self.name, &namespace, &table],
            )
            .await
            .map_err(|e| db_error("reading the catalog", &e))?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<String>>(0)))
    }

    /// Registers a new table; false when another writer registered it first.
    pub(crate) async fn create(
        &self,
        namespace: &str,
        table: &str,
        metadata_location: &str,
    ) -> Result<bool, String> {
        self.client
            .execute(
                "INSERT INTO iceberg_namespace_properties \
                 (catalog_name, namespace, property_key, property_value) \
                 VALUES ($1, $2, 'exists', 'true') ON CONFLICT DO NOTHING",
                &[&self.name, &namespace],
            )
            .await
            .map_err(|e| db_error("creating the namespace", &e))?;
        let inserted = self
            .client
            .execute(
                "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, \
                 metadata_location, previous_metadata_location, iceberg_type) \
                 VALUES ($1, $2, $3, $4, NULL, $5) ON CONFLICT DO NOTHING",
                &[
                    &self.name,
                    &namespace,
                    &table,
                    &metadata_location,
                    &TABLE_TYPE,
                ],
            )
            .await
            .map_err(|e| db_error("registering the table", &e))?;
        Ok(inserted == 1)
    }

    /// Points the table at `new` if it still points at `old`; false when another writer
    /// committed in between.
    pub(crate) async fn swap(
        &self,
        namespace: &str,
        table: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, String> {
        let updated = self
            .client
            .execute(
                "UPDATE iceberg_tables SET metadata_location = $4, previous_metadata_location = $5 \
                 WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 \
                 AND metadata_location = $5",
                &[&self.name, &namespace, &table, &new, &old],
            )
            .await
            .map_err(|e| db_error("committing to the catalog", &e))?;
        Ok(updated == 1)
    }
}
