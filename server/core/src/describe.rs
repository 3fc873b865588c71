//! A human-readable dump of a stored object, for `meridian admin inspect`: operators compare
//! replicas by eye (clock, siblings with their dots, tombstones), tests by the canonical bytes.

use crate::object::StoredObject;
use crate::version::Version;
use std::fmt::Write as _;

/// Values longer than this are shown as a prefix and a length.
const PREVIEW: usize = 48;

fn preview(data: &[u8]) -> String {
    let shown = &data[..data.len().min(PREVIEW)];
    let text = match std::str::from_utf8(shown) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => shown.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    };
    if data.len() > PREVIEW {
        format!("{text}… ({} bytes)", data.len())
    } else {
        text
    }
}

fn version_line(v: &Version) -> String {
    let rid: String = v.request_id[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match &v.data {
        Some(d) => format!("value {} (ts {}, request {rid}…)", preview(d), v.timestamp),
        None => format!("tombstone (ts {}, request {rid}…)", v.timestamp),
    }
}

impl StoredObject {
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match self {
            StoredObject::Siblings(s) => {
                let clock: Vec<String> = s
                    .dvv
                    .entries()
                    .iter()
                    .map(|e| format!("{}:{}", &e.actor.to_string()[..8], e.counter))
                    .collect();
                let _ = writeln!(out, "kind siblings, clock [{}]", clock.join(" "));
                let live = s.dvv.values().filter(|v| !v.is_tombstone()).count();
                let dead = s.dvv.len() - live;
                let _ = writeln!(out, "{live} sibling(s), {dead} tombstone(s)");
                for (dot, v) in s.dvv.dotted_values() {
                    let _ = writeln!(
                        out,
                        "  dot {}:{}  {}",
                        &dot.actor.to_string()[..8],
                        dot.counter,
                        version_line(v)
                    );
                }
            }
            StoredObject::Lww(r) => {
                let _ = writeln!(
                    out,
                    "kind lww, written by {}\n  {}",
                    &r.actor.to_string()[..8],
                    version_line(&r.version)
                );
            }
            StoredObject::Crdt(c) => {
                let ctx = c.state.context();
                let clock: Vec<String> = ctx
                    .vector()
                    .iter()
                    .map(|(a, n)| format!("{}:{}", &a.to_string()[..8], n))
                    .collect();
                let _ = writeln!(
                    out,
                    "kind {}, clock [{}], {} dot(s) beyond it",
                    c.state.kind(),
                    clock.join(" "),
                    ctx.cloud().len()
                );
                let value = format!("{:?}", c.state.value());
                let _ = writeln!(out, "  value {}", preview(value.as_bytes()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::ValueKind;
    use crate::actor::ActorId;
    use crate::replica::{Write, WriteOutcome, apply_write};

    #[test]
    fn shows_clock_siblings_and_tombstones() {
        let write = |base, data: Option<&[u8]>, id: u8| match apply_write(
            ValueKind::Siblings,
            base,
            Write {
                actor: ActorId([7; 16]),
                context: None,
                data: data.map(<[u8]>::to_vec),
                request_id: [id; 16],
                timestamp: 5,
                max_siblings: 10,
            },
        ) {
            Ok(WriteOutcome::Applied { object, .. }) => object,
            other => panic!("{other:?}"),
        };
        let a = write(None, Some(b"apples"), 1);
        let b = write(Some(&a), Some(&[0xff; 60]), 2);
        let text = b.describe();
        // The first dot starts at the write's timestamp (5), the second follows it.
        assert!(text.contains("clock [07070707:6]"), "{text}");
        assert!(text.contains("2 sibling(s), 0 tombstone(s)"), "{text}");
        assert!(text.contains("\"apples\""), "{text}");
        assert!(text.contains("(60 bytes)"), "{text}");
        let c = write(Some(&b), None, 3);
        assert!(c.describe().contains("tombstone"), "{}", c.describe());
    }
}
