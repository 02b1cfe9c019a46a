// A SQLite VFS for power-cut tests. It wraps the default VFS ("unix") and passes every call
// through, so the process sees its files as usual, while it records, per file, every write,
// truncate and delete, and every sync. A snapshot then writes the files as a disk would hold
// them after a power cut at a given moment: what was synced by then, plus (optionally) a random
// subset of the writes not yet synced, since a disk may have flushed any of them.
//
// The model: a write or truncate reaches the disk whole or not at all (SQLite's own assumption,
// with powersafe overwrite), unsynced ones in any order; a sync makes every earlier write and
// truncate of that file durable; a delete is durable at once. The shared-memory index (-shm) is
// not a file SQLite trusts after a crash (the first connection rebuilds it), so it is not kept.
#ifndef CFIELDBOOK_POWERCUT_H
#define CFIELDBOOK_POWERCUT_H

/// Registers the recording VFS as the default one, wrapping the current default. Call it once,
/// before any database is opened. Returns SQLITE_OK (0) or an SQLite error code.
int fieldbook_powercut_install(void);

/// The recording clock: the number of writes, truncates, syncs and deletes recorded so far.
/// A moment to cut the power at.
long long fieldbook_powercut_clock(void);

/// Writes into `directory` (which must exist) each recorded file, under its own name, as it
/// would be on disk after a power cut at `clock` (the events before it happened, the others
/// not). With `keep_unsynced_percent` 0, every write not yet synced is lost (the worst case);
/// otherwise each survives with that probability, drawn from `seed`. A file deleted or never
/// synced may be missing or short. Returns 0, or -1 if a file could not be written.
int fieldbook_powercut_snapshot(long long clock, const char *directory, int keep_unsynced_percent, unsigned seed);

#endif
