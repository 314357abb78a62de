//! What a backup leaves out: glob patterns, folders marked by a file, cache folders,
//! other file systems and large files, as restic and Borg users expect them.
//!
//! Patterns follow restic's rules. A pattern starting with `/` is matched against the
//! whole absolute path; any other pattern against the path's last components, so
//! `*.tmp` and `node_modules` match at every depth and `build/out` matches any `out`
//! inside a `build`. `*` and `?` stay within one component, `**` spans several, and
//! an excluded folder is left out with everything under it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::tree::{Node, NodeKind};
use crate::Error;

/// The file that marks a cache folder (bford.info/cachedir) and the header it starts with.
const CACHEDIR_TAG: (&str, &[u8]) = (
    "CACHEDIR.TAG",
    b"Signature: 8a477f597d28d172789f06886806bc55",
);

/// Why an entry was left out of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// It matched an exclude pattern.
    Pattern,
    /// A folder holding a marker file (`--exclude-if-present`, `--exclude-caches`).
    Marked,
    /// On another file system than the path given (`--one-file-system`).
    OtherFileSystem,
    /// A file larger than the limit.
    TooLarge,
}

/// A marker file: its name and, optionally, the bytes it must start with.
#[derive(Debug, Clone)]
struct Marker {
    name: String,
    header: Option<Vec<u8>>,
}

/// The exclusion rules of one backup. The default leaves nothing out.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    globs: Vec<Glob>,
    set: Option<GlobSet>,
    markers: Vec<Marker>,
    one_file_system: bool,
    larger_than: Option<u64>,
}

impl Filter {
    /// A filter that leaves nothing out.
    pub fn new() -> Self {
        Filter::default()
    }

    /// Leaves out what matches `pattern` (see the module documentation).
    ///
    /// # Errors
    /// [`Error::BadPattern`] for an empty, negated or malformed pattern.
    pub fn exclude(mut self, pattern: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadPattern {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = pattern.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(bad("an empty pattern would match nothing"));
        }
        if trimmed.starts_with('!') {
            return Err(bad("negated patterns (re-including) are not supported"));
        }
        let rooted = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("**/{trimmed}")
        };
        let glob = GlobBuilder::new(&rooted)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| bad(&e.kind().to_string()))?;
        self.globs.push(glob);
        let mut builder = GlobSetBuilder::new();
        for g in &self.globs {
            builder.add(g.clone());
        }
        self.set = Some(builder.build().map_err(|e| bad(&e.to_string()))?);
        Ok(self)
    }

    /// Leaves out every pattern of an exclude file: one per line, blank lines and lines
    /// starting with `#` ignored, surrounding spaces trimmed.
    ///
    /// # Errors
    /// As [`Filter::exclude`], naming the pattern.
    pub fn exclude_lines(mut self, text: &str) -> Result<Self, Error> {
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                self = self.exclude(line)?;
            }
        }
        Ok(self)
    }

    /// Leaves out folders holding a file `spec` names: `NAME`, or `NAME:HEADER` for a
    /// file that must also start with HEADER (restic's form).
    ///
    /// # Errors
    /// [`Error::BadPattern`] for an empty name or one with a `/`.
    pub fn exclude_if_present(mut self, spec: &str) -> Result<Self, Error> {
        let (name, header) = match spec.split_once(':') {
            Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
            None => (spec, None),
        };
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::BadPattern {
                pattern: spec.to_owned(),
                reason: "give a file name (no folder), optionally followed by :HEADER".to_owned(),
            });
        }
        self.markers.push(Marker {
            name: name.to_owned(),
            header,
        });
        Ok(self)
    }

    /// Leaves out cache folders: those holding a `CACHEDIR.TAG` with its signature.
    pub fn exclude_caches(mut self) -> Self {
        self.markers.push(Marker {
            name: CACHEDIR_TAG.0.to_owned(),
            header: Some(CACHEDIR_TAG.1.to_vec()),
        });
        self
    }

    /// Stays on the file system of each path given.
    pub fn one_file_system(mut self, on: bool) -> Self {
        self.one_file_system = on;
        self
    }

    /// Leaves out files larger than `bytes`.
    pub fn larger_than(mut self, bytes: Option<u64>) -> Self {
        self.larger_than = bytes;
        self
    }

    /// Whether the entry at `path` (scanned as `node`, under a path given on device
    /// `source_dev`) is left out, and why. A folder's marker files are looked for here.
    pub fn excludes(&self, path: &Path, node: &Node, source_dev: u64) -> Option<Excluded> {
        if self.set.as_ref().is_some_and(|set| set.is_match(path)) {
            return Some(Excluded::Pattern);
        }
        match node.kind {
            NodeKind::File { .. } if self.larger_than.is_some_and(|max| node.size > max) => {
                Some(Excluded::TooLarge)
            }
            NodeKind::Dir { .. } => {
                if self.one_file_system && node.dev != source_dev {
                    return Some(Excluded::OtherFileSystem);
                }
                self.markers
                    .iter()
                    .any(|m| marks(path, m))
                    .then_some(Excluded::Marked)
            }
            _ => None,
        }
    }
}

/// Whether folder `dir` holds the marker (a regular file, starting with its header).
fn marks(dir: &Path, marker: &Marker) -> bool {
    let file = dir.join(&marker.name);
    match &marker.header {
        None => std::fs::symlink_metadata(&file).is_ok(),
        Some(header) => {
            let Ok(f) = File::open(&file) else {
                return false;
            };
            let mut start = Vec::with_capacity(header.len());
            f.take(header.len() as u64).read_to_end(&mut start).is_ok() && start == *header
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, size: u64, dev: u64) -> Node {
        Node {
            name: b"x".to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: 0,
            mtime_ns: 0,
            ctime: 0,
            ctime_ns: 0,
            inode: 0,
            dev,
            nlink: 1,
            size,
            xattrs: Vec::new(),
        }
    }

    fn file(size: u64) -> Node {
        node(
            NodeKind::File {
                content: Vec::new(),
            },
            size,
            1,
        )
    }

    #[test]
    fn patterns_match_like_restics() {
        let f = Filter::new()
            .exclude("*.tmp")
            .unwrap()
            .exclude("node_modules")
            .unwrap()
            .exclude("/srv/data/private")
            .unwrap()
            .exclude("build/out")
            .unwrap()
            .exclude("cache/**/*.bin")
            .unwrap();
        let hit = |p: &str| f.excludes(Path::new(p), &file(1), 1);
        assert_eq!(hit("/home/a/x.tmp"), Some(Excluded::Pattern));
        assert_eq!(hit("/x.tmp"), Some(Excluded::Pattern));
        assert_eq!(hit("/home/a/x.tmp.keep"), None);
        assert_eq!(hit("/p/node_modules"), Some(Excluded::Pattern));
        assert_eq!(hit("/p/node_modules2"), None);
        assert_eq!(hit("/srv/data/private"), Some(Excluded::Pattern));
        assert_eq!(
            hit("/other/srv/data/private"),
            None,
            "rooted patterns match from /"
        );
        assert_eq!(hit("/a/build/out"), Some(Excluded::Pattern));
        assert_eq!(
            hit("/a/build/x/out"),
            None,
            "* and plain names stay in one component"
        );
        assert_eq!(hit("/a/cache/1/2/z.bin"), Some(Excluded::Pattern));
        assert_eq!(hit("/a/cache/z.txt"), None);
    }

    #[test]
    fn exclude_files_skip_comments_and_bad_patterns_are_named() {
        let f = Filter::new()
            .exclude_lines("# comment\n\n  *.o  \n/tmp/x\n")
            .unwrap();
        assert_eq!(f.globs.len(), 2);
        assert!(f.excludes(Path::new("/a/b.o"), &file(1), 1).is_some());
        for bad in ["", "!keep", "a[b"] {
            let e = Filter::new().exclude(bad).unwrap_err();
            assert!(
                matches!(&e, Error::BadPattern { pattern, .. } if pattern == bad),
                "{e}"
            );
        }
        assert!(Filter::new().exclude_if_present("a/b").is_err());
    }

    #[test]
    fn markers_file_systems_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let tagged = dir.path().join("tagged");
        let fake = dir.path().join("fake");
        let plain = dir.path().join("plain");
        for d in [&tagged, &fake, &plain] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(
            tagged.join("CACHEDIR.TAG"),
            [CACHEDIR_TAG.1, b"\n# a cache"].concat(),
        )
        .unwrap();
        std::fs::write(fake.join("CACHEDIR.TAG"), b"not the signature").unwrap();
        std::fs::write(plain.join(".nobackup"), b"").unwrap();
        let dir_node = |dev| node(NodeKind::Dir { subtree: [0; 32] }, 0, dev);
        let caches = Filter::new().exclude_caches();
        assert_eq!(
            caches.excludes(&tagged, &dir_node(1), 1),
            Some(Excluded::Marked)
        );
        assert_eq!(caches.excludes(&fake, &dir_node(1), 1), None);
        let present = Filter::new().exclude_if_present(".nobackup").unwrap();
        assert_eq!(
            present.excludes(&plain, &dir_node(1), 1),
            Some(Excluded::Marked)
        );
        assert_eq!(present.excludes(&tagged, &dir_node(1), 1), None);
        let one = Filter::new().one_file_system(true);
        assert_eq!(
            one.excludes(&plain, &dir_node(2), 1),
            Some(Excluded::OtherFileSystem)
        );
        assert_eq!(one.excludes(&plain, &dir_node(1), 1), None);
        let small = Filter::new().larger_than(Some(10));
        assert_eq!(
            small.excludes(Path::new("/f"), &file(11), 1),
            Some(Excluded::TooLarge)
        );
        assert_eq!(small.excludes(Path::new("/f"), &file(10), 1), None);
    }
}
