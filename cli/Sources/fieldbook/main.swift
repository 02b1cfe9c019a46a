print("fieldbook: the device CLI is being built; try `fieldbook demo` once it lands")
