//! Reaching a path inside the restore target without following a symbolic link.
//!
//! Every restore step starts here: `rel` must be relative and made of normal
//! components only, and its parent directory is opened one component at a time, each
//! with `openat(parent_fd, component, O_DIRECTORY | O_NOFOLLOW)`. A symbolic link (or
//! anything else that is not a directory) where a directory is expected makes the open
//! fail, and the path is refused. The step then acts on the last component *relative
//! to that descriptor* (`mknodat`, `symlinkat`, `fchownat`, `utimensat`, `openat`), with
//! "do not follow" on the last component too.
//!
//! Why descriptors rather than `symlink_metadata` on each prefix, as the v1 restore
//! does: a check by path is only true when it is made. Whatever replaces a checked
//! directory with a symbolic link before the write lands (another process with write
//! access somewhere under the target, or a restore of a hostile snapshot racing itself)
//! would redirect the write outside the target. A descriptor stays bound to the
//! directory that was checked, so nothing done later through it can leave the target.
//! `openat2`'s `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` would do the walk in one call,
//! but is Linux 5.6+ only; this walk is POSIX and costs one `openat` per component.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{openat, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::Error;

/// Checks that `rel` is a path inside a target: not empty, not absolute, and made of
/// normal components only (no `..`, no leading `.`). Returns its last component.
///
/// # Errors
/// [`Error::HostileArchivePath`] naming `rel`.
pub fn check_relative(rel: &Path) -> Result<&OsStr, Error> {
    let mut last = None;
    for component in rel.components() {
        match component {
            Component::Normal(name) => last = Some(name),
            _ => return Err(refused(rel, "absolute, or containing '..' or '.'")),
        }
    }
    last.ok_or_else(|| refused(rel, "empty"))
}

/// The directory holding `rel`'s last component, opened without following a symbolic
/// link anywhere below `target`, and that last component.
///
/// `target` itself is the caller's: it is opened as given (symbolic links in its own
/// path are followed).
pub(super) fn open_parent<'r>(target: &Path, rel: &'r Path) -> Result<(OwnedFd, &'r OsStr), Error> {
    let name = check_relative(rel)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, target, flags, Mode::empty())
        .map_err(|e| Error::io(format!("opening {}", target.display()), e.into()))?;
    let mut walked = target.to_path_buf();
    let parents = rel.parent().unwrap_or(Path::new(""));
    for component in parents.components() {
        walked.push(component);
        dir = match openat(
            &dir,
            component.as_os_str(),
            flags | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // ELOOP on Linux for a link with O_NOFOLLOW, ENOTDIR for a link or a file
            // with O_DIRECTORY: either way not a directory we may enter.
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(refused(
                    rel,
                    "leads through a symbolic link or something else that is not a directory",
                ))
            }
            Err(e) => return Err(Error::io(format!("opening {}", walked.display()), e.into())),
        };
    }
    Ok((dir, name))
}

pub(super) fn refused(rel: &Path, reason: &'static str) -> Error {
    Error::HostileArchivePath {
        path: rel.to_string_lossy().into_owned(),
        reason,
    }
}
