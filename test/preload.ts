import "../src/runtime-shims";
import { checkServices, ensureTemplate } from "./helpers/services";

// Runs once before any test file: refuse to start without the real services, and build the
// migrated template that every test file clones.
await checkServices();
await ensureTemplate();
