module docker-clair.bench/relay-floor

go 1.22
