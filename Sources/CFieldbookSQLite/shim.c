#include <sqlite3.h>
#include "CFieldbookSQLite.h"

int fieldbook_sqlite_configure(void) {
    // SQLite counts every allocation under a global mutex unless told not to.
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
