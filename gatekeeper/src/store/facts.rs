//! Coded facts read from FHIR R4 resources at upload: a Patient's gender and birth date, a
//! Condition's codes, an Observation's codes and numeric value. Research aggregates are
//! computed over these, at the holder.

use serde_json::Value;

/// What a record contributes to research aggregates.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Facts {
    /// From a Patient resource: (gender, birth date as YYYY-MM-DD).
    pub demographics: Option<(Option<String>, Option<String>)>,
    /// (kind, system, code, value): kind is "condition" or "observation".
    pub codes: Vec<(&'static str, String, String, Option<f64>)>,
}

fn codings(v: &Value) -> Vec<(String, String)> {
    v.get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let system = c.get("system")?.as_str()?.to_string();
            let code = c.get("code")?.as_str()?.to_string();
            Some((system, code))
        })
        .collect()
}

/// A birth date as YYYY-MM-DD (FHIR allows YYYY and YYYY-MM too: the first day is taken).
fn birth_date(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_digit());
    match parts.as_slice() {
        [y] if ok(y, 4) => Some(format!("{y}-01-01")),
        [y, m] if ok(y, 4) && ok(m, 2) => Some(format!("{y}-{m}-01")),
        [y, m, d] if ok(y, 4) && ok(m, 2) && d.get(..2).is_some_and(|d| ok(d, 2)) => {
            Some(format!("{y}-{m}-{}", &d[..2]))
        }
        _ => None,
    }
}

/// Reads the facts of one FHIR resource; of a Bundle, the facts of the resources it holds
/// (one level deep: a Bundle in a Bundle is not read).
pub fn extract(resource: &Value) -> Facts {
    if resource.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        let mut f = Facts::default();
        let entries = resource.get("entry").and_then(Value::as_array);
        for r in entries
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource"))
        {
            if r.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                continue;
            }
            let one = extract(r);
            f.demographics = f.demographics.or(one.demographics);
            f.codes.extend(one.codes);
        }
        return f;
    }
    let mut f = Facts::default();
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Patient") => {
            let gender = resource
                .get("gender")
                .and_then(Value::as_str)
                .map(str::to_string);
            let birth = resource
                .get("birthDate")
                .and_then(Value::as_str)
                .and_then(birth_date);
            f.demographics = Some((gender, birth));
        }
        Some("Condition") => {
            if let Some(code) = resource.get("code") {
                for (system, c) in codings(code) {
                    f.codes.push(("condition", system, c, None));
                }
            }
        }
        Some("Observation") => {
            let value = resource
                .get("valueQuantity")
                .and_then(|q| q.get("value"))
                .and_then(Value::as_f64);
            if let Some(code) = resource.get("code") {
                for (system, c) in codings(code) {
                    f.codes.push(("observation", system, c, value));
                }
            }
        }
        _ => {}
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patient_condition_observation() {
        let p = serde_json::json!({"resourceType": "Patient", "gender": "female", "birthDate": "1974-12-25"});
        assert_eq!(
            extract(&p).demographics,
            Some((Some("female".into()), Some("1974-12-25".into())))
        );
        let c = serde_json::json!({"resourceType": "Condition", "code": {"coding": [
            {"system": "http://snomed.info/sct", "code": "44054006"},
            {"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11"}]}});
        assert_eq!(extract(&c).codes.len(), 2);
        let o = serde_json::json!({"resourceType": "Observation", "code": {"coding": [
            {"system": "http://loinc.org", "code": "718-7"}]}, "valueQuantity": {"value": 13.2}});
        assert_eq!(
            extract(&o).codes,
            vec![(
                "observation",
                "http://loinc.org".into(),
                "718-7".into(),
                Some(13.2)
            )]
        );
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": p}, {"resource": c}, {"resource": o},
            {"resource": {"resourceType": "Bundle", "entry": [{"resource": o}]}}]});
        let f = extract(&bundle);
        assert_eq!(
            (f.demographics.is_some(), f.codes.len()),
            (true, 3),
            "a Bundle's resources are read, a nested Bundle is not"
        );
        assert_eq!(birth_date("1980"), Some("1980-01-01".into()));
        assert_eq!(birth_date("19x0"), None);
        // A multi-byte character where the day's digits are: no date, no panic.
        assert_eq!(birth_date("1970-01-1é"), None);
        assert_eq!(birth_date("1970-01-é1"), None);
        assert_eq!(birth_date("1970-01-05T00:00"), Some("1970-01-05".into()));
    }
}
