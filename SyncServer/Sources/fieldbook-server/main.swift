import FieldbookServer
print("x")
