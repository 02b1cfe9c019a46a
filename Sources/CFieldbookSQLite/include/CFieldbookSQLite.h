// The SQLite pre-update hook, which the system library (Debian's libsqlite3)
// is built with (SQLITE_ENABLE_PREUPDATE_HOOK) but which sqlite3.h declares
// only under that macro. The store uses it to read a row's old and new values
// during an UPDATE without a second lookup.
#ifndef CFIELDBOOK_SQLITE_H
#define CFIELDBOOK_SQLITE_H

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_value sqlite3_value;

void *sqlite3_preupdate_hook(
    sqlite3 *db,
    void (*xPreUpdate)(void *context, sqlite3 *db, int op, char const *databaseName, char const *tableName,
                       long long oldRowID, long long newRowID),
    void *context);
int sqlite3_preupdate_old(sqlite3 *db, int column, sqlite3_value **value);
int sqlite3_preupdate_new(sqlite3 *db, int column, sqlite3_value **value);

// Process-wide settings for SQLite, made before the first connection opens (sqlite3_config
// is variadic, so Swift cannot call it): no allocation statistics. Returns SQLite's result
// code (SQLITE_MISUSE once a connection has opened: the settings then stay as they are).
int fieldbook_sqlite_configure(void);

#endif
