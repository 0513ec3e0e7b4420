//! PostgreSQL's `pgoutput` logical replication messages, protocol version 1 (the messages
//! between a transaction's Begin and Commit; those two the replication client decodes itself):
//! Relation, Insert, Update, Delete, Truncate, and the Type and Origin messages that are only
//! skipped. Values arrive in text format (the output functions' text), decoded later by
//! [`super::types`]. Layouts: PostgreSQL's "Logical Replication Message Formats".

use bytes::Bytes;

/// One column of a relation as a Relation message describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Part of the replica identity (the primary key, by default).
    pub key: bool,
    /// The column's name.
    pub name: String,
    /// The column's type OID.
    pub type_oid: u32,
    /// The type modifier (`atttypmod`): length, precision and scale, or -1.
    pub type_modifier: i32,
}

/// A table's shape, sent before the first change to it in a session and after it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// The table's OID, which later messages refer to.
    pub oid: u32,
    /// The schema (namespace); `pg_catalog` is sent as empty.
    pub schema: String,
    /// The table's name.
    pub table: String,
    /// The replica identity setting: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// The columns in order.
    pub columns: Vec<RelationColumn>,
}

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change (updates carry no copy of it).
    Unchanged,
    /// The value in text format.
    Text(Bytes),
}

/// A row: one cell per column of its relation.
pub type Tuple = Vec<Cell>;

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A table's shape.
    Relation(Relation),
    /// A new row.
    Insert {
        /// The table.
        relation: u32,
        /// The row.
        new: Tuple,
    },
    /// A changed row; `old` is the old key (`K`, the key changed) or the whole old row (`O`,
    /// replica identity full), else absent.
    Update {
        /// The table.
        relation: u32,
        /// The old key or row, if sent.
        old: Option<(OldKind, Tuple)>,
        /// The row after the change.
        new: Tuple,
    },
    /// A deleted row: its key (`K`) or, with replica identity full, the whole row (`O`).
    Delete {
        /// The table.
        relation: u32,
        /// The old key or row.
        old: (OldKind, Tuple),
    },
    /// Tables truncated together.
    Truncate {
        /// The tables.
        relations: Vec<u32>,
    },
    /// A message that carries nothing a change event needs (Type, Origin, Begin, Commit,
    /// logical decoding messages).
    Other(u8),
}

/// What an old tuple holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// Only the replica identity's columns (others are null).
    Key,
    /// The whole old row.
    Full,
}

/// A message that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct Malformed(pub String);

struct Reader {
    data: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(Malformed(format!(
                "needs {n} more bytes at {} of {}",
                self.at,
                self.data.len()
            )));
        };
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, Malformed> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, Malformed> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(self.i32()? as u32)
    }

    fn string(&mut self) -> Result<String, Malformed> {
        let rest = &self.data[self.at..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(Malformed("unterminated string".into()));
        };
        let text = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.at += nul + 1;
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Tuple, Malformed> {
        let count = self.i16()?;
        let mut cells = Vec::with_capacity(count.max(0) as usize);
        for _ in 0..count {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' | b'b' => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err(Malformed(format!("negative value length {len}")));
                    }
                    let start = self.at;
                    self.take(len as usize)?;
                    Cell::Text(self.data.slice(start..start + len as usize))
                }
                other => return Err(Malformed(format!("unknown tuple cell kind {other:#x}"))),
            });
        }
        Ok(cells)
    }

    fn old(&mut self, kind: u8) -> Result<(OldKind, Tuple), Malformed> {
        let kind = match kind {
            b'K' => OldKind::Key,
            b'O' => OldKind::Full,
            other => return Err(Malformed(format!("unknown old tuple kind {other:#x}"))),
        };
        Ok((kind, self.tuple()?))
    }
}

/// Decodes one message (an XLogData payload).
pub fn decode(data: Bytes) -> Result<Message, Malformed> {
    let mut r = Reader { data, at: 0 };
    let tag = r.u8()?;
    Ok(match tag {
        b'R' => {
            let oid = r.u32()?;
            let schema = r.string()?;
            let table = r.string()?;
            let replica_identity = r.u8()?;
            let count = r.i16()?;
            let mut columns = Vec::with_capacity(count.max(0) as usize);
            for _ in 0..count {
                let flags = r.u8()?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                schema: if schema.is_empty() {
                    "pg_catalog".into()
                } else {
                    schema
                },
                table,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'N' => Message::Insert {
                    relation,
                    new: r.tuple()?,
                },
                other => return Err(Malformed(format!("insert without N but {other:#x}"))),
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.old(kind)?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(Malformed(format!("update without N but {kind:#x}")));
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            Message::Delete {
                relation,
                old: r.old(kind)?,
            }
        }
        b'T' => {
            let count = r.i32()?;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(count.clamp(0, 1024) as usize);
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        other => Message::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn text_cell(out: &mut Vec<u8>, s: &str) {
        out.push(b't');
        out.extend_from_slice(&(s.len() as i32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn decodes_a_relation_and_its_key_columns() {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16385u32.to_be_bytes());
        cstr(&mut m, "public");
        cstr(&mut m, "customers");
        m.push(b'd');
        m.extend_from_slice(&2i16.to_be_bytes());
        m.push(1);
        cstr(&mut m, "id");
        m.extend_from_slice(&23u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        m.push(0);
        cstr(&mut m, "price");
        m.extend_from_slice(&1700u32.to_be_bytes());
        m.extend_from_slice(&(((10 << 16) | 2) + 4i32).to_be_bytes());
        let Message::Relation(rel) = decode(Bytes::from(m)).expect("present") else {
            panic!("not a relation")
        };
        assert_eq!(rel.oid, 16385);
        assert_eq!(
            (rel.schema.as_str(), rel.table.as_str()),
            ("public", "customers")
        );
        assert!(rel.columns[0].key && !rel.columns[1].key);
        assert_eq!(rel.columns[1].type_oid, 1700);
        assert_eq!(rel.columns[1].type_modifier, ((10 << 16) | 2) + 4);
    }

    #[test]
    fn decodes_updates_with_and_without_old_rows_and_unchanged_toast() {
        let mut m = vec![b'U'];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.push(b'O');
        m.extend_from_slice(&2i16.to_be_bytes());
        text_cell(&mut m, "1");
        m.push(b'n');
        m.push(b'N');
        m.extend_from_slice(&2i16.to_be_bytes());
        text_cell(&mut m, "1");
        m.push(b'u');
        assert_eq!(
            decode(Bytes::from(m)).expect("present"),
            Message::Update {
                relation: 7,
                old: Some((
                    OldKind::Full,
                    vec![Cell::Text(Bytes::from_static(b"1")), Cell::Null]
                )),
                new: vec![Cell::Text(Bytes::from_static(b"1")), Cell::Unchanged],
            }
        );
        let mut m = vec![b'U'];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.push(b'N');
        m.extend_from_slice(&1i16.to_be_bytes());
        text_cell(&mut m, "2");
        let Message::Update { old: None, new, .. } = decode(Bytes::from(m)).expect("present")
        else {
            panic!("not an update without old row")
        };
        assert_eq!(new, vec![Cell::Text(Bytes::from_static(b"2"))]);
    }

    #[test]
    fn decodes_truncate_and_rejects_truncated_input() {
        let mut m = vec![b'T'];
        m.extend_from_slice(&2i32.to_be_bytes());
        m.push(0);
        m.extend_from_slice(&5u32.to_be_bytes());
        m.extend_from_slice(&6u32.to_be_bytes());
        assert_eq!(
            decode(Bytes::from(m.clone())).expect("present"),
            Message::Truncate {
                relations: vec![5, 6]
            }
        );
        m.pop();
        assert!(decode(Bytes::from(m)).is_err());
        let mut d = vec![b'D'];
        d.extend_from_slice(&5u32.to_be_bytes());
        d.push(b'X');
        assert!(
            decode(Bytes::from(d))
                .expect_err("fails")
                .0
                .contains("old tuple kind")
        );
    }
}
