// The bundler replaces DOCKER_CLAIR_VERSION with package.json's version; a SEA has no package.json to
// read at run time. Under tsx (tests, development) the fallback says so honestly.
declare const DOCKER_CLAIR_VERSION: string | undefined;

export const VERSION: string = typeof DOCKER_CLAIR_VERSION === 'string' ? DOCKER_CLAIR_VERSION : '0.0.0-dev';
