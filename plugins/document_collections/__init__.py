"""Document collections: a resource provider (datasource type with privacy scores) apps can hold."""
