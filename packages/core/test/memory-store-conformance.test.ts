import { MemoryStore } from '../src/store/memory-store';
import { storeConformance } from '../src/testing';

storeConformance('memory', async () => ({ store: new MemoryStore() }));
