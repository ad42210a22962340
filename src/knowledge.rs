//! The knowledge base ([`trdscreen_core::knowledge`]), and the one place it touches the disk: a
//! site's directory of override files, read at start-up.

pub use trdscreen_core::knowledge::*;

use std::path::Path;

/// The embedded files, each replaced by a file of the same name in `dir` when there is one.
pub fn load_with_overrides(dir: &Path) -> Result<Knowledge, KnowledgeError> {
    if !dir.is_dir() {
        return Err(KnowledgeError::Read {
            file: dir.display().to_string(),
            reason: "not a directory".into(),
        });
    }
    Knowledge::with_overrides(|name| {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let refused = |reason: String| KnowledgeError::Read {
            file: path.display().to_string(),
            reason,
        };
        let bytes = crate::files::read_bounded(&path, OVERRIDE_FILE_CAP)
            .map_err(|e| refused(e.to_string()))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| refused("not UTF-8 text".into()))
    })
}

/// Largest override file read: the largest file shipped (products.toml) is under half a MiB.
const OVERRIDE_FILE_CAP: u64 = 16 * crate::files::MIB;

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(name: &str, file: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "trdscreen-knowledge-edge-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
        dir
    }

    #[test]
    fn a_file_in_the_directory_replaces_the_embedded_one_and_others_stay() {
        let policy = EMBEDDED[2]
            .1
            .replace("min_duration_weeks = 6", "min_duration_weeks = 4");
        let dir = dir_with("policy", "policy.toml", &policy);
        let k = load_with_overrides(&dir).unwrap();
        assert_ne!(k.ruleset_version, Knowledge::embedded().ruleset_version);
        let same =
            Knowledge::with_overrides(|name| Ok((name == "policy.toml").then(|| policy.clone())))
                .unwrap();
        assert_eq!(k.ruleset_version, same.ruleset_version);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_or_a_bad_file_is_refused_naming_the_path() {
        let nowhere = std::env::temp_dir().join("trdscreen-knowledge-edge-nowhere");
        let err = load_with_overrides(&nowhere).unwrap_err().to_string();
        assert!(
            err.contains("not a directory") && err.contains("nowhere"),
            "{err}"
        );
        let dir = dir_with("bad", "hints.toml", "not toml [");
        let err = load_with_overrides(&dir).unwrap_err().to_string();
        assert!(err.contains("hints.toml"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_override_that_is_a_fifo_or_too_large_is_refused_naming_it_without_waiting() {
        let dir = dir_with("special", "codes.toml", "");
        std::fs::remove_file(dir.join("codes.toml")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("codes.toml"))
            .status()
            .unwrap();
        assert!(made.success());
        let err = load_with_overrides(&dir).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot read knowledge file {}: not a regular file (a FIFO)",
                dir.join("codes.toml").display()
            )
        );
        std::fs::remove_file(dir.join("codes.toml")).unwrap();
        std::fs::File::create(dir.join("drugs.toml"))
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let err = load_with_overrides(&dir).unwrap_err().to_string();
        assert!(
            err.contains("drugs.toml") && err.ends_with("larger than 16 MiB"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
