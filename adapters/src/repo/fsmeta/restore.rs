//! Creating special files and applying metadata, in a target the caller owns.
//!
//! Regular files and directories are the restore engine's to create (a file lands
//! through a temporary name, [`SparseWriter`](super::SparseWriter), verification and a
//! no-clobber rename); this module creates what has no content (symbolic links, FIFOs,
//! device nodes) and puts every kind's metadata back. Every call reaches its entry
//! through `walk`, so nothing follows a symbolic link below the target.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    chmodat, chownat, fchmod, fchown, fstat, futimens, openat, statat, symlinkat, utimensat,
    AtFlags, FileType, Gid, Mode, Nsecs, OFlags, RawMode, Stat, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;
use xattr::FileExt;

use super::walk::{open_parent, refused};
use super::{unsupported, Owners};
use crate::repo::tree::{Node, NodeKind};
use crate::Error;

/// What [`create_special`] did.
#[must_use = "a skipped entry is to be reported to the user"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The entry exists now, with a private mode (0600) until
    /// [`apply_metadata`] gives it its own.
    Created,
    /// Nothing was created; the caller reports why and goes on.
    Skipped {
        /// Why.
        reason: &'static str,
    },
}

/// What [`apply_metadata`] could not apply; everything else was applied.
#[must_use = "skipped extended attributes are to be reported to the user"]
#[derive(Debug, Default)]
pub struct Applied {
    /// Extended attributes that the target file system does not support, or that this
    /// user may not set on this kind of file (`trusted.*` without root, `user.*` on a
    /// symbolic link, ...), each with the system's error.
    pub skipped_xattrs: Vec<(Vec<u8>, io::Error)>,
}

/// Whether this process runs as root (effective user ID 0): device nodes and
/// ownership are restored only then.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Creates the symbolic link, FIFO or device node `node` at `rel` inside `target`,
/// never replacing anything there.
///
/// Device nodes are created only when running as root, and a root without the right
/// to (a container without `CAP_MKNOD`) skips them too; sockets are always skipped
/// (nothing listens on a restored socket); those come back as [`Created::Skipped`].
/// FIFOs and device nodes are created with mode 0600, private until
/// [`apply_metadata`] gives them theirs.
///
/// # Errors
/// [`Error::HostileArchivePath`] for a `rel` that is not a plain relative path or that
/// leads through a symbolic link; [`Error::DestinationExists`] if anything is at `rel`
/// already (a dangling link included); [`Error::Io`] for a `File` or `Dir` node (the
/// engine creates those) and for system errors.
pub fn create_special(target: &Path, rel: &Path, node: &Node) -> Result<Created, Error> {
    let (dir, name) = open_parent(target, rel)?;
    let made = match &node.kind {
        NodeKind::Symlink { target: link } => symlinkat(OsStr::from_bytes(link), &dir, name),
        NodeKind::Fifo => make_node(&dir, name, FileType::Fifo, 0),
        NodeKind::CharDevice { rdev } | NodeKind::BlockDevice { rdev } => {
            if !running_as_root() {
                return Ok(Created::Skipped {
                    reason: "device nodes are created only when running as root",
                });
            }
            let kind = if matches!(node.kind, NodeKind::CharDevice { .. }) {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            match make_node(&dir, name, kind, *rdev) {
                Err(Errno::PERM) => {
                    return Ok(Created::Skipped {
                        reason: "not permitted to create device nodes here",
                    })
                }
                made => made,
            }
        }
        NodeKind::Socket => {
            return Ok(Created::Skipped {
                reason: "sockets are not restored: one means nothing without its program",
            })
        }
        NodeKind::File { .. } | NodeKind::Dir { .. } => {
            return Err(Error::io(
                format!("restoring {}", target.join(rel).display()),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "create_special makes links, FIFOs and devices; files and directories \
                     are the restore engine's",
                ),
            ))
        }
    };
    match made {
        Ok(()) => Ok(Created::Created),
        Err(Errno::EXIST) => Err(Error::DestinationExists {
            path: target.join(rel),
        }),
        Err(Errno::NOSYS) => Ok(Created::Skipped {
            reason: "this platform cannot create FIFOs or device nodes this way",
        }),
        Err(e) => Err(Error::io(
            format!("creating {}", target.join(rel).display()),
            e.into(),
        )),
    }
}

/// Applies `node`'s metadata to the entry at `rel` inside `target`, never following a
/// symbolic link: ownership (as root only), extended attributes, mode (not for
/// symbolic links, whose mode means nothing on Linux), then modification time to the
/// nanosecond (the access time is set to the same; links get theirs too, as `lutimes`
/// does).
///
/// Ownership goes by name when the recorded user or group exists on this machine,
/// else by the recorded number; without root it is left as it is, silently, as any
/// unprivileged restore must. The order matters: `chown` clears setuid and setgid, so
/// the mode comes after it; Linux also drops `security.capability` on `chown`, so the
/// attributes come after it too; and the mode comes after the attributes, since an
/// unprivileged user may not set attributes on a file it made read-only.
///
/// Setting anything in a directory changes the directory's modification time, so a
/// directory's metadata must be applied after everything inside it is in place: the
/// engine calls this for a directory once its children are done. Sockets are skipped.
///
/// Regular files, directories and FIFOs are opened (`O_NOFOLLOW`, `O_NONBLOCK`) and
/// changed through the descriptor. Links and device nodes cannot be opened without
/// following them or touching the device, so they are changed by name relative to
/// their directory's descriptor with "do not follow" (`fchownat`, `utimensat`), and
/// their attributes through the path with the `l*xattr` calls: a race on those needs a
/// writer inside the caller's own target.
///
/// # Errors
/// [`Error::HostileArchivePath`] for a bad `rel`, a path through a symbolic link, or
/// an entry of another kind than `node`'s; [`Error::Io`] for system errors other than
/// refused extended attributes, which are listed in [`Applied`].
pub fn apply_metadata(
    target: &Path,
    rel: &Path,
    node: &Node,
    as_root: bool,
    owners: &mut Owners,
) -> Result<Applied, Error> {
    let (dir, name) = open_parent(target, rel)?;
    let path = target.join(rel);
    let at = |e: io::Error| Error::io(format!("restoring metadata of {}", path.display()), e);
    let owner = as_root.then(|| {
        let uid = owners.uid(&node.user).unwrap_or(node.uid);
        let gid = owners.gid(&node.group).unwrap_or(node.gid);
        (
            id(uid).map(Uid::from_raw_unchecked),
            id(gid).map(Gid::from_raw_unchecked),
        )
    });
    let mode = Mode::from_raw_mode(node.mode as RawMode);
    let time = Timespec {
        tv_sec: node.mtime,
        tv_nsec: node.mtime_ns as Nsecs,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    let mut applied = Applied::default();
    match &node.kind {
        NodeKind::Socket => {}
        NodeKind::File { .. } | NodeKind::Dir { .. } | NodeKind::Fifo => {
            let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            if matches!(node.kind, NodeKind::Dir { .. }) {
                flags |= OFlags::DIRECTORY;
            }
            let fd: OwnedFd = match openat(&dir, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => return Err(wrong_kind(rel)),
                Err(e) => return Err(at(e.into())),
            };
            same_kind(rel, &fstat(&fd).map_err(|e| at(e.into()))?, &node.kind)?;
            if let Some((uid, gid)) = owner {
                fchown(&fd, uid, gid).map_err(|e| at(e.into()))?;
            }
            let file = File::from(fd);
            for x in &node.xattrs {
                let set = file.set_xattr(OsStr::from_bytes(&x.name), &x.value);
                note_xattr(set, &x.name, &mut applied).map_err(at)?;
            }
            fchmod(file.as_fd(), mode).map_err(|e| at(e.into()))?;
            futimens(file.as_fd(), &times).map_err(|e| at(e.into()))?;
        }
        NodeKind::Symlink { .. } | NodeKind::CharDevice { .. } | NodeKind::BlockDevice { .. } => {
            let nofollow = AtFlags::SYMLINK_NOFOLLOW;
            same_kind(
                rel,
                &statat(&dir, name, nofollow).map_err(|e| at(e.into()))?,
                &node.kind,
            )?;
            if let Some((uid, gid)) = owner {
                chownat(&dir, name, uid, gid, nofollow).map_err(|e| at(e.into()))?;
            }
            for x in &node.xattrs {
                let set = xattr::set(&path, OsStr::from_bytes(&x.name), &x.value);
                note_xattr(set, &x.name, &mut applied).map_err(at)?;
            }
            if !matches!(node.kind, NodeKind::Symlink { .. }) {
                // Checked just above not to be a link (fchmodat cannot refuse to follow).
                chmodat(&dir, name, mode, AtFlags::empty()).map_err(|e| at(e.into()))?;
            }
            utimensat(&dir, name, &times, nofollow).map_err(|e| at(e.into()))?;
        }
    }
    Ok(applied)
}

/// `mknodat`, where the platform has it.
#[cfg(not(target_vendor = "apple"))]
#[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
fn make_node(dir: &OwnedFd, name: &OsStr, kind: FileType, rdev: u64) -> Result<(), Errno> {
    // `dev_t` is 64 bits on Linux and the BSDs; narrower elsewhere.
    let rdev = rustix::fs::Dev::try_from(rdev).map_err(|_| Errno::INVAL)?;
    rustix::fs::mknodat(dir, name, kind, Mode::from_raw_mode(0o600), rdev)
}

/// macOS has no `mknodat` in rustix; such entries are skipped there.
#[cfg(target_vendor = "apple")]
fn make_node(_: &OwnedFd, _: &OsStr, _: FileType, _: u64) -> Result<(), Errno> {
    Err(Errno::NOSYS)
}

/// A user or group ID to set: `u32::MAX` is "-1", which `chown` reads as "leave as is".
fn id(raw: u32) -> Option<u32> {
    (raw != u32::MAX).then_some(raw)
}

/// Refuses an entry whose kind is not the node's: a link, or anything else, put where
/// the tree has something else.
fn same_kind(rel: &Path, stat: &Stat, kind: &NodeKind) -> Result<(), Error> {
    let found = FileType::from_raw_mode(stat.st_mode as RawMode);
    let expected = match kind {
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::Fifo => FileType::Fifo,
        NodeKind::CharDevice { .. } => FileType::CharacterDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    };
    if found == expected {
        Ok(())
    } else {
        Err(wrong_kind(rel))
    }
}

fn wrong_kind(rel: &Path) -> Error {
    refused(rel, "is not the kind of entry the tree records there")
}

/// Lists an attribute the file system or this user cannot set; other errors stand.
fn note_xattr(set: io::Result<()>, name: &[u8], applied: &mut Applied) -> io::Result<()> {
    match set {
        Err(e) if unsupported(&e) || e.kind() == io::ErrorKind::PermissionDenied => {
            applied.skipped_xattrs.push((name.to_vec(), e));
            Ok(())
        }
        other => other,
    }
}
