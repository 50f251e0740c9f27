//! `audit verify`'s report: the problems, and which records a digest seals and which not yet.

use super::print::print_json;
use crate::audit::TrailReport;
use crate::Region;
use serde_json::json;

/// `a–b`, or `a` when they are one record.
fn span(a: u64, b: u64) -> String {
    if a == b {
        format!("record {a}")
    } else {
        format!("records {a}–{b}")
    }
}

/// Prints the report: in JSON, its fields with `Region`, `Sealed` and `Unsealed` (each a
/// `[first, last]` pair, or null); as text, one line per fact, then the problems (or that the
/// trail is intact).
pub fn audit_verify(r: &TrailReport, region: &Region, json: bool) {
    let sealed = (r.sealed_through > 0).then(|| [1, r.sealed_through.min(r.records)]);
    let unsealed = (r.records > r.sealed_through).then(|| [r.sealed_through + 1, r.records]);
    if json {
        let mut v = serde_json::to_value(r).expect("serializable");
        v["Region"] = json!(region.as_str());
        v["Sealed"] = json!(sealed);
        v["Unsealed"] = json!(unsealed);
        print_json(&v);
        return;
    }
    let mut facts = vec![format!("{} records", r.records)];
    if let Some([a, b]) = sealed {
        facts.push(format!("{} sealed by a digest", span(a, b)));
    }
    if let Some([a, b]) = unsealed {
        facts.push(format!(
            "{} not yet sealed by a digest (the next comes after an hour of activity; until then the keyed chain and the high-water mark at record {} protect them)",
            span(a, b),
            r.marked_through
        ));
    }
    outln!("{region}: {}", facts.join("; "));
    if r.unkeyed_through > 0 {
        outln!(
            "{region}: {} were written by an earlier cofre, chained by an unkeyed hash: only a digest seals them against rewriting",
            span(1, r.unkeyed_through)
        );
    }
    if r.cut_short {
        outln!(
            "{region}: the last line is an append cut short (a kill or a full disk), not a record: the next request drops it"
        );
    }
    super::print::audit_verify(&r.problems, region, false);
}
