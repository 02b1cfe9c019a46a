import Hummingbird
import GRDB
import Logging
import FieldbookCore
enum Placeholder {}
