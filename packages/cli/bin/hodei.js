#!/usr/bin/env node
// npm links a package's bin only when the file exists at install time, and dist/ is built after
// `npm ci`; this stub is always there and loads the built CLI.
import '../dist/cli.js';
