//! A batch's rows held column by column, as PostgreSQL receives them: arrays bound to
//! `INSERT ... SELECT * FROM UNNEST(...)` for small batches, PostgreSQL's binary `COPY` format for
//! large ones (see BENCHMARKS.md for the measurements behind the two paths).

use alloy::primitives::{Address, B256};

/// The SQL type of a column, as the indexer's tables use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sql {
    /// `BIGINT` (block numbers, times, uint64 values with the same 64 bits).
    BigInt,
    /// `INT` (log indexes).
    Int,
    /// `SMALLINT` (uint8 codes: roles, purposes, categories, statuses).
    SmallInt,
    /// `BYTEA` (addresses, hashes).
    Bytea,
    /// `TEXT`.
    Text,
}

impl Sql {
    /// The array type an `UNNEST` parameter is cast to.
    pub fn array(self) -> &'static str {
        match self {
            Self::BigInt => "bigint[]",
            Self::Int => "int[]",
            Self::SmallInt => "smallint[]",
            Self::Bytea => "bytea[]",
            Self::Text => "text[]",
        }
    }
}

/// A column's name and type.
pub type ColumnDef = (&'static str, Sql);

/// One value of a row built field by field (history keys and states).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Val {
    /// A `BIGINT`.
    BigInt(i64),
    /// A `SMALLINT`.
    SmallInt(i16),
    /// A `BYTEA`.
    Bytes(Vec<u8>),
}

impl From<Address> for Val {
    fn from(a: Address) -> Self {
        Self::Bytes(a.to_vec())
    }
}
impl From<B256> for Val {
    fn from(h: B256) -> Self {
        Self::Bytes(h.to_vec())
    }
}
impl From<u8> for Val {
    fn from(v: u8) -> Self {
        Self::SmallInt(v.into())
    }
}
impl From<u64> for Val {
    /// The same 64 bits (a uint64 above 2^63 - 1 reads back with `as u64`).
    fn from(v: u64) -> Self {
        Self::BigInt(v as i64)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Self::BigInt(v)
    }
}

/// A column of a batch: one typed vector per SQL type; the nullable ones for history spans.
#[derive(Debug, Clone)]
pub enum Column {
    /// `BIGINT`.
    BigInt(Vec<i64>),
    /// `INT`.
    Int(Vec<i32>),
    /// `SMALLINT`.
    SmallInt(Vec<i16>),
    /// `BYTEA`.
    Bytea(Vec<Vec<u8>>),
    /// `TEXT`.
    Text(Vec<String>),
    /// `BIGINT`, nullable.
    NullBigInt(Vec<Option<i64>>),
    /// `TEXT`, nullable.
    NullText(Vec<Option<String>>),
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn put_field(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(&(data.len() as i32).to_be_bytes());
    buf.extend_from_slice(data);
}

/// A NULL field in binary `COPY`: length -1, no bytes.
fn put_null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

impl Column {
    /// An empty column of type `t`.
    pub fn new(t: Sql) -> Self {
        match t {
            Sql::BigInt => Self::BigInt(vec![]),
            Sql::Int => Self::Int(vec![]),
            Sql::SmallInt => Self::SmallInt(vec![]),
            Sql::Bytea => Self::Bytea(vec![]),
            Sql::Text => Self::Text(vec![]),
        }
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        match self {
            Self::BigInt(v) => v.len(),
            Self::Int(v) => v.len(),
            Self::SmallInt(v) => v.len(),
            Self::Bytea(v) => v.len(),
            Self::Text(v) => v.len(),
            Self::NullBigInt(v) => v.len(),
            Self::NullText(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `v`; `false` if its type is not the column's.
    pub fn push(&mut self, v: Val) -> bool {
        match (self, v) {
            (Self::BigInt(c), Val::BigInt(v)) => c.push(v),
            (Self::SmallInt(c), Val::SmallInt(v)) => c.push(v),
            (Self::Bytea(c), Val::Bytes(v)) => c.push(v),
            _ => return false,
        }
        true
    }

    /// Binds the column as one array parameter.
    pub fn bind<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        match self {
            Self::BigInt(v) => q.bind(v),
            Self::Int(v) => q.bind(v),
            Self::SmallInt(v) => q.bind(v),
            Self::Bytea(v) => q.bind(v),
            Self::Text(v) => q.bind(v),
            Self::NullBigInt(v) => q.bind(v),
            Self::NullText(v) => q.bind(v),
        }
    }

    /// Writes row `i`'s field in binary `COPY` format: its length, then its bytes.
    pub fn put(&self, i: usize, buf: &mut Vec<u8>) {
        match self {
            Self::BigInt(v) => put_field(buf, &v[i].to_be_bytes()),
            Self::Int(v) => put_field(buf, &v[i].to_be_bytes()),
            Self::SmallInt(v) => put_field(buf, &v[i].to_be_bytes()),
            Self::Bytea(v) => put_field(buf, &v[i]),
            // TEXT in binary format is its UTF-8 bytes.
            Self::Text(v) => put_field(buf, v[i].as_bytes()),
            Self::NullBigInt(v) => match v[i] {
                Some(x) => put_field(buf, &x.to_be_bytes()),
                None => put_null(buf),
            },
            Self::NullText(v) => match &v[i] {
                Some(x) => put_field(buf, x.as_bytes()),
                None => put_null(buf),
            },
        }
    }
}

/// The rows of one table in a batch, column by column.
#[derive(Debug, Clone)]
pub struct Rows {
    /// The columns, in the order of the table's definition.
    pub columns: Vec<Column>,
}

impl Rows {
    /// Empty columns of the given types.
    pub fn new(types: impl IntoIterator<Item = Sql>) -> Self {
        Self {
            columns: types.into_iter().map(Column::new).collect(),
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole batch in PostgreSQL's binary `COPY` format: signature, flags, header
    /// extension length; per row the field count and the fields; the trailer.
    pub fn copy_data(&self) -> Vec<u8> {
        let n = self.len();
        let mut buf = Vec::with_capacity(n * 200);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        for i in 0..n {
            buf.extend_from_slice(&(self.columns.len() as i16).to_be_bytes());
            for c in &self.columns {
                c.put(i, &mut buf);
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        buf
    }
}

/// Appends one event's fields to a table's rows, in the order of the table's columns. A field
/// of the wrong type for its column is a mistake in an event's description, reported (as an
/// integrity error) on the first event of its kind rather than written in the wrong place.
pub struct RowWriter<'a> {
    columns: &'a mut [Column],
    next: usize,
    error: Option<String>,
}

impl<'a> RowWriter<'a> {
    pub(crate) fn new(columns: &'a mut [Column]) -> Self {
        Self {
            columns,
            next: 0,
            error: None,
        }
    }

    fn column(&mut self) -> Option<&mut Column> {
        let i = self.next;
        self.next += 1;
        let c = self.columns.get_mut(i);
        if c.is_none() && self.error.is_none() {
            self.error = Some(format!("more fields than the table's {i} columns"));
        }
        c
    }

    fn mismatch(&mut self, what: &str) {
        if self.error.is_none() {
            self.error = Some(format!(
                "field {} is {what}, not its column's type",
                self.next
            ));
        }
    }

    /// An address (`BYTEA`).
    pub fn address(&mut self, a: Address) -> &mut Self {
        self.bytes(a.to_vec())
    }

    /// A 32-byte word (`BYTEA`).
    pub fn word(&mut self, h: B256) -> &mut Self {
        self.bytes(h.to_vec())
    }

    /// Bytes of any length (`BYTEA`): an opt-in's holder slots.
    pub fn bytes(&mut self, b: Vec<u8>) -> &mut Self {
        match self.column() {
            Some(Column::Bytea(c)) => c.push(b),
            Some(_) => self.mismatch("bytes"),
            None => {}
        }
        self
    }

    /// A uint64 or smaller (`BIGINT`, the same 64 bits: a mask's bit 63 is the sign bit, so
    /// that bit tests work in SQL).
    pub fn uint(&mut self, v: impl Into<u64>) -> &mut Self {
        let v = v.into() as i64;
        match self.column() {
            Some(Column::BigInt(c)) => c.push(v),
            Some(_) => self.mismatch("a bigint"),
            None => {}
        }
        self
    }

    /// A log index (`INT`).
    pub fn index(&mut self, v: i32) -> &mut Self {
        match self.column() {
            Some(Column::Int(c)) => c.push(v),
            Some(_) => self.mismatch("an int"),
            None => {}
        }
        self
    }

    /// A uint8 code (`SMALLINT`).
    pub fn code(&mut self, v: u8) -> &mut Self {
        match self.column() {
            Some(Column::SmallInt(c)) => c.push(v.into()),
            Some(_) => self.mismatch("a smallint"),
            None => {}
        }
        self
    }

    /// A string (`TEXT`).
    pub fn text(&mut self, s: &str) -> &mut Self {
        match self.column() {
            Some(Column::Text(c)) => c.push(s.to_owned()),
            Some(_) => self.mismatch("text"),
            None => {}
        }
        self
    }

    /// Records an error (a value that does not fit its column).
    pub fn fail(&mut self, msg: String) -> &mut Self {
        self.error.get_or_insert(msg);
        self
    }

    /// Checks that every column got exactly one field.
    pub(crate) fn finish(self) -> Result<(), String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.next != self.columns.len() {
            return Err(format!(
                "{} fields for {} columns",
                self.next,
                self.columns.len()
            ));
        }
        Ok(())
    }
}
