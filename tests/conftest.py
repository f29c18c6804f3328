from services.common import logs

# Services log state changes from background threads; in tests only
# warnings and errors are worth showing.
logs.configure("tests", "console", "warning")
