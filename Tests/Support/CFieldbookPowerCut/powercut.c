// The recording VFS of CFieldbookPowerCut.h.
#include "CFieldbookPowerCut.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_WRITE, OP_TRUNCATE, OP_SYNC, OP_DELETE };

typedef struct {
    long long clock;
    int kind;
    sqlite3_int64 offset;  // a write's offset, a truncate's size
    int length;
    unsigned char *data;
    size_t covers;  // a sync: the file's ops before it started, which it made durable
} Op;

typedef struct {
    char *path;
    Op *ops;
    size_t count, capacity;
} Recorded;

typedef struct {
    sqlite3_file base;
    Recorded *recorded;  // NULL: a file not recorded (temporary files)
    sqlite3_file *real;  // the wrapped VFS's file, allocated right after this struct
} File;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Recorded **files;
static size_t fileCount, fileCapacity;
static long long clockNow;
static sqlite3_vfs *wrapped;

static void *grow(void *array, size_t *capacity, size_t count, size_t size) {
    if (count < *capacity) return array;
    *capacity = *capacity ? *capacity * 2 : 16;
    void *bigger = realloc(array, *capacity * size);
    if (!bigger) abort();
    return bigger;
}

// The record of `path`, made if needed. Call with the lock held.
static Recorded *recordedFile(const char *path, int *isNew) {
    *isNew = 0;
    for (size_t i = 0; i < fileCount; i++)
        if (strcmp(files[i]->path, path) == 0) return files[i];
    Recorded *file = calloc(1, sizeof(Recorded));
    if (!file || !(file->path = strdup(path))) abort();
    files = grow(files, &fileCapacity, fileCount, sizeof(Recorded *));
    files[fileCount++] = file;
    *isNew = 1;
    return file;
}

// Appends an op and ticks the clock. Call with the lock held.
static void append(Recorded *file, int kind, sqlite3_int64 offset, const void *data, int length, size_t covers) {
    file->ops = grow(file->ops, &file->capacity, file->count, sizeof(Op));
    Op *op = &file->ops[file->count++];
    op->clock = clockNow++;
    op->kind = kind;
    op->offset = offset;
    op->length = length;
    op->covers = covers;
    op->data = NULL;
    if (length > 0) {
        if (!(op->data = malloc((size_t)length))) abort();
        memcpy(op->data, data, (size_t)length);
    }
}

// MARK: - The file methods: pass through, and record writes, truncates and syncs.

static int fileClose(sqlite3_file *file) {
    File *f = (File *)file;
    return f->real->pMethods->xClose(f->real);
}

static int fileRead(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    File *f = (File *)file;
    return f->real->pMethods->xRead(f->real, buffer, amount, offset);
}

static int fileWrite(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    File *f = (File *)file;
    int rc = f->real->pMethods->xWrite(f->real, buffer, amount, offset);
    if (rc == SQLITE_OK && f->recorded) {
        pthread_mutex_lock(&lock);
        append(f->recorded, OP_WRITE, offset, buffer, amount, 0);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

static int fileTruncate(sqlite3_file *file, sqlite3_int64 size) {
    File *f = (File *)file;
    int rc = f->real->pMethods->xTruncate(f->real, size);
    if (rc == SQLITE_OK && f->recorded) {
        pthread_mutex_lock(&lock);
        append(f->recorded, OP_TRUNCATE, size, NULL, 0, 0);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

static int fileSync(sqlite3_file *file, int flags) {
    File *f = (File *)file;
    // A sync makes durable what was written before it started; a write another connection
    // makes while it runs may or may not be (it stays unsynced in the model).
    size_t covers = 0;
    if (f->recorded) {
        pthread_mutex_lock(&lock);
        covers = f->recorded->count;
        pthread_mutex_unlock(&lock);
    }
    int rc = f->real->pMethods->xSync(f->real, flags);
    if (rc == SQLITE_OK && f->recorded) {
        pthread_mutex_lock(&lock);
        append(f->recorded, OP_SYNC, 0, NULL, 0, covers);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

static int fileSize(sqlite3_file *file, sqlite3_int64 *size) {
    File *f = (File *)file;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int fileLock(sqlite3_file *file, int level) {
    File *f = (File *)file;
    return f->real->pMethods->xLock(f->real, level);
}

static int fileUnlock(sqlite3_file *file, int level) {
    File *f = (File *)file;
    return f->real->pMethods->xUnlock(f->real, level);
}

static int fileCheckReservedLock(sqlite3_file *file, int *result) {
    File *f = (File *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, result);
}

static int fileControl(sqlite3_file *file, int op, void *argument) {
    File *f = (File *)file;
    return f->real->pMethods->xFileControl(f->real, op, argument);
}

static int fileSectorSize(sqlite3_file *file) {
    File *f = (File *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int fileDeviceCharacteristics(sqlite3_file *file) {
    File *f = (File *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int fileShmMap(sqlite3_file *file, int region, int size, int extend, void volatile **address) {
    File *f = (File *)file;
    return f->real->pMethods->xShmMap(f->real, region, size, extend, address);
}

static int fileShmLock(sqlite3_file *file, int offset, int n, int flags) {
    File *f = (File *)file;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void fileShmBarrier(sqlite3_file *file) {
    File *f = (File *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int fileShmUnmap(sqlite3_file *file, int deleteFlag) {
    File *f = (File *)file;
    return f->real->pMethods->xShmUnmap(f->real, deleteFlag);
}

static int fileFetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **pointer) {
    File *f = (File *)file;
    return f->real->pMethods->xFetch(f->real, offset, amount, pointer);
}

static int fileUnfetch(sqlite3_file *file, sqlite3_int64 offset, void *pointer) {
    File *f = (File *)file;
    return f->real->pMethods->xUnfetch(f->real, offset, pointer);
}

static const sqlite3_io_methods fileMethods = {
    3, fileClose, fileRead, fileWrite, fileTruncate, fileSync, fileSize, fileLock, fileUnlock,
    fileCheckReservedLock, fileControl, fileSectorSize, fileDeviceCharacteristics, fileShmMap,
    fileShmLock, fileShmBarrier, fileShmUnmap, fileFetch, fileUnfetch,
};

// MARK: - The VFS methods: pass through; record which files open and which are deleted.

static int vfsOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outFlags) {
    (void)vfs;
    File *f = (File *)file;
    f->real = (sqlite3_file *)(f + 1);
    f->recorded = NULL;
    int rc = wrapped->xOpen(wrapped, name, f->real, flags, outFlags);
    // SQLite closes a file whose methods are set, even if opening it failed.
    f->base.pMethods = f->real->pMethods ? &fileMethods : NULL;
    if (rc != SQLITE_OK || !name || !(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)))
        return rc;
    pthread_mutex_lock(&lock);
    int isNew;
    f->recorded = recordedFile(name, &isNew);
    sqlite3_int64 size = 0;
    if (isNew && f->real->pMethods->xFileSize(f->real, &size) == SQLITE_OK && size > 0) {
        // A file that existed before: what it holds is taken as durable.
        unsigned char *content = malloc((size_t)size);
        if (!content) abort();
        if (f->real->pMethods->xRead(f->real, content, (int)size, 0) == SQLITE_OK) {
            append(f->recorded, OP_WRITE, 0, content, (int)size, 0);
            append(f->recorded, OP_SYNC, 0, NULL, 0, f->recorded->count);
        }
        free(content);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int vfsDelete(sqlite3_vfs *vfs, const char *name, int syncDirectory) {
    (void)vfs;
    int rc = wrapped->xDelete(wrapped, name, syncDirectory);
    if (rc == SQLITE_OK) {
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < fileCount; i++)
            if (strcmp(files[i]->path, name) == 0) append(files[i], OP_DELETE, 0, NULL, 0, 0);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

static int vfsAccess(sqlite3_vfs *vfs, const char *name, int flags, int *result) {
    (void)vfs;
    return wrapped->xAccess(wrapped, name, flags, result);
}

static int vfsFullPathname(sqlite3_vfs *vfs, const char *name, int size, char *out) {
    (void)vfs;
    return wrapped->xFullPathname(wrapped, name, size, out);
}

static void *vfsDlOpen(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return wrapped->xDlOpen(wrapped, name);
}

static void vfsDlError(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    wrapped->xDlError(wrapped, size, out);
}

static void (*vfsDlSym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    (void)vfs;
    return wrapped->xDlSym(wrapped, handle, symbol);
}

static void vfsDlClose(sqlite3_vfs *vfs, void *handle) {
    (void)vfs;
    wrapped->xDlClose(wrapped, handle);
}

static int vfsRandomness(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return wrapped->xRandomness(wrapped, size, out);
}

static int vfsSleep(sqlite3_vfs *vfs, int microseconds) {
    (void)vfs;
    return wrapped->xSleep(wrapped, microseconds);
}

static int vfsCurrentTime(sqlite3_vfs *vfs, double *now) {
    (void)vfs;
    return wrapped->xCurrentTime(wrapped, now);
}

static int vfsGetLastError(sqlite3_vfs *vfs, int size, char *out) {
    (void)vfs;
    return wrapped->xGetLastError(wrapped, size, out);
}

static int vfsCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *now) {
    (void)vfs;
    return wrapped->xCurrentTimeInt64(wrapped, now);
}

static sqlite3_vfs recordingVFS;

int fieldbook_powercut_install(void) {
    if (wrapped) return SQLITE_MISUSE;
    int rc = sqlite3_initialize();
    if (rc != SQLITE_OK) return rc;
    wrapped = sqlite3_vfs_find(NULL);
    if (!wrapped || wrapped->iVersion < 2) return SQLITE_ERROR;
    recordingVFS = (sqlite3_vfs){
        2, (int)sizeof(File) + wrapped->szOsFile, wrapped->mxPathname, NULL, "fieldbook-powercut", NULL,
        vfsOpen, vfsDelete, vfsAccess, vfsFullPathname, vfsDlOpen, vfsDlError, vfsDlSym, vfsDlClose,
        vfsRandomness, vfsSleep, vfsCurrentTime, vfsGetLastError, vfsCurrentTimeInt64,
    };
    return sqlite3_vfs_register(&recordingVFS, 1);
}

long long fieldbook_powercut_clock(void) {
    pthread_mutex_lock(&lock);
    long long now = clockNow;
    pthread_mutex_unlock(&lock);
    return now;
}

// MARK: - Snapshots

static unsigned nextRandom(unsigned *state) {  // xorshift32
    unsigned x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

// Writes `file` as it would be on disk after a power cut at `clock`. Call with the lock held.
static int snapshotFile(const Recorded *file, long long clock, const char *directory, int keepPercent, unsigned seed) {
    size_t end = 0;
    while (end < file->count && file->ops[end].clock < clock) end++;
    // The ops before `durable` reached the disk for sure: synced, or before a delete.
    size_t durable = 0;
    for (size_t i = 0; i < end; i++) {
        const Op *op = &file->ops[i];
        if (op->kind == OP_SYNC && op->covers > durable) durable = op->covers;
        if (op->kind == OP_DELETE && i + 1 > durable) durable = i + 1;
    }
    unsigned random = seed * 2654435761u + 1;
    for (const char *c = file->path; *c; c++) random = random * 31 + (unsigned char)*c;
    if (!random) random = 1;
    unsigned char *content = NULL;
    size_t size = 0, capacity = 0;
    int exists = 1;
    for (size_t i = 0; i < end; i++) {
        const Op *op = &file->ops[i];
        if (op->kind == OP_SYNC) continue;
        if (i >= durable && (keepPercent <= 0 || (int)(nextRandom(&random) % 100) >= keepPercent)) continue;
        switch (op->kind) {
        case OP_WRITE: {
            size_t needed = (size_t)op->offset + (size_t)op->length;
            if (needed > capacity) {
                capacity = needed * 2;
                if (!(content = realloc(content, capacity))) abort();
            }
            if (needed > size) {
                if ((size_t)op->offset > size) memset(content + size, 0, (size_t)op->offset - size);
                size = needed;
            }
            memcpy(content + op->offset, op->data, (size_t)op->length);
            exists = 1;
            break;
        }
        case OP_TRUNCATE:
            if ((size_t)op->offset > capacity) {
                capacity = (size_t)op->offset;
                if (!(content = realloc(content, capacity))) abort();
            }
            if ((size_t)op->offset > size) memset(content + size, 0, (size_t)op->offset - size);
            size = (size_t)op->offset;
            exists = 1;
            break;
        case OP_DELETE:
            size = 0;
            exists = 0;
            break;
        }
    }
    int result = 0;
    if (exists) {
        const char *name = strrchr(file->path, '/');
        name = name ? name + 1 : file->path;
        size_t length = strlen(directory) + strlen(name) + 2;
        char *path = malloc(length);
        if (!path) abort();
        snprintf(path, length, "%s/%s", directory, name);
        FILE *out = fopen(path, "wb");
        if (!out || (size > 0 && fwrite(content, 1, size, out) != size)) result = -1;
        if (out && fclose(out) != 0) result = -1;
        free(path);
    }
    free(content);
    return result;
}

int fieldbook_powercut_snapshot(long long clock, const char *directory, int keepPercent, unsigned seed) {
    pthread_mutex_lock(&lock);
    int result = 0;
    for (size_t i = 0; i < fileCount; i++)
        if (snapshotFile(files[i], clock, directory, keepPercent, seed) != 0) result = -1;
    pthread_mutex_unlock(&lock);
    return result;
}
