"""Small shared helpers: config resolvers, bundled-asset paths, console output."""
