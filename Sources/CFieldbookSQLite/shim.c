// Declarations only; see include/CFieldbookSQLite.h.
