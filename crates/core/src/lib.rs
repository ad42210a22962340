//! trdscreen's clinical core: one patient's FHIR R4 record in, an explained screening for
//! treatment-resistant depression out. Pure functions over data: no I/O, no clock, no async runtime,
//! no transport, so that every clinical test builds and runs without the service's dependencies.
//!
//! Layers, data flowing one way: [`date`] and [`ratio`] (exact values) → [`fhir`] (the lenient
//! resource types and one patient's record) → [`knowledge`] (the knowledge base, parsed from the
//! texts of its files) → [`screening`] (`evaluate(record, as_of, knowledge) -> Assessment`).
//! The service (`trdscreen`: gRPC, the CLI, the nightly job, the FHIR client) sits on top and
//! reads files, including a site's knowledge overrides.

pub mod date;
pub mod fhir;
pub mod fnv;
pub mod knowledge;
pub mod ratio;
pub mod screening;

#[cfg(test)]
mod tests {
    /// The core's own dependencies are data crates only; `cargo tree -p trdscreen-core -e normal`
    /// shows the whole tree (serde, serde_json, thiserror, toml and theirs).
    #[test]
    fn the_core_depends_on_no_io_transport_or_runtime_crate() {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let deps = manifest["dependencies"].as_table().unwrap();
        let mut names: Vec<&str> = deps.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["serde", "serde_json", "thiserror", "toml"]);
        for section in ["build-dependencies", "target"] {
            assert!(!manifest.contains_key(section), "{section}");
        }
    }
}
