import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readMigrations } from '../../src/db/migrate';

/**
 * A migration a database has applied must never change: `wagate migrate` refuses to run on a
 * database whose applied migration differs from the shipped text, so the next upgrade of that
 * installation would stop at its pre-upgrade hook. A change belongs in a new migration. (A
 * comment-only edit of an applied one also needs its old checksum accepted: see
 * EQUIVALENT_EARLIER_CHECKSUMS in src/db/migrate.ts.)
 */
const SHIPPED: Record<string, string> = {
  '001_ledger.sql': '9231ef2176ee0348858a6ac475d90d83083aebc49766e6aba9b434978a8c4c47',
  '002_orders.sql': '9535d0578d3ff6ca4b1d31fe6f960c44e3b11aa283db208b9ea2f2206b83ad2d',
  '003_lighter_outbox.sql': '0207bd5026d4cb771e4cc6023eff246b485ee9cf3bdc55ab2e2804df6ccdd61e',
  '004_record_batch_function.sql': 'bbbe88cd4c9e1ee62549accc826ba1620db992e04836db00d1ac37b5662a6c33',
  '005_erased_status.sql': 'f3d7156fce07545b60e8a035838c23c6a75066fb6a05c3f3d3b06e26ec6722ba',
  '006_validate_status_check.sql': '539b043f75a81c7ee68749b7d80dd7484c4d0ef66c9676d13e894119780cae41',
  '007_unfinished_messages_index.sql': '98cb33e53bb1f6a2e18d11a036962e4f86be11449e293d5dcda04af127040556',
  '008_worker_membership.sql': '1c939ef57ce6a143892adefb9e52a0a9e0d43051a1dd603318a14559b01e15a8',
  '009_record_batch_without_advisory_locks.sql': '737c7bbe49ea8408a2fd4f2825c12ee18e356624e324dfcda0226b60f2e7f4d0',
  '010_customer_languages.sql': 'b2f7269b861cedbf4643322adb05216bfcfabca9fb307484c3971ef91ebfc1be',
  '011_order_created_at_indexes.sql': '83dfe6313d5a2c0c53cbf354df07e04cdbd7ceae189ce6c83f80365ff443ea9e',
  '012_catalog_version.sql': 'a41e2859d26521abdeba83fdaa518831a6f17a7024480708f586fef266ff1d88',
  '013_unfinished_status_function.sql': '4e3196a5ba131bcd1e9bfb4aa75fb9048a38c8daea3f603401b1a29e2b4ed6e0',
  '014_unfinished_index_for_counts.sql': 'b11ea53a3b38f52e5e956d60b7ba51a15fa4ba8c5450f4d866bcdf2d49552fb9',
  '015_drop_plain_unfinished_index.sql': '4c8322dfb0bb8cfceb0da05d9305c5a9e700a2f82519f1b1bd54502c2b35d12d',
  '016_waiting_until.sql': '916f2d5e399c823ecaadf5817a840efc8bde8046a0648c08920da7ca2d8fd9a1',
  '017_reshard_gathered_for.sql': '7d42b9d671058bc4c78379bff9dffa57bc2bc80a94b9a77bbe47b9fbf8015c53',
  '018_unfinished_index_with_readiness.sql': '33c2b4870ec0533afbf76b3d0471db8aeb6f1f21fa71a0f005b8d186228d497f',
  '019_drop_unfinished_count_index.sql': 'e5170443b2e3ffa5818118c0fe097b25829e3e1f14a9e678fcc840329e4db893',
  '020_record_batch_names_receipt_replies.sql': 'fbdd285db08430805fce9ddd93b2bbf5c64101423597b577309c77be20ab7d1c',
  '021_outbox_sweeper_lease.sql': '8251b35b23f5daae4ba88b074e62e01b8ff12b12d57c0126867a3c0b58047547',
  '022_worker_members_leaving.sql': '504f129420a84a888f09da8da12abd92c875cd1e229d4a39644f088e2acf0886',
  '023_order_total_precision.sql': '3f7ca956a4ad79464ecd7b8f0ca3b0b46e44e706795b4c67f2074e3f91a4431c',
  '024_receipts_of_erased_replies.sql': '9bf111d50eab99c84245f0b5b7ab980961efcfdebaffdb8a77e58a128ee4fd5e',
  '025_replies_in_between_index.sql': 'e80b2b6124f8ae72587de07387b70284bddf4464c259906c0fe885272e7c9f65',
  '026_orders_by_sender_index.sql': '53635ab515c08a04cea87d23f7e5f3e483f938635112fa9dc296bbf30b20ad26',
  '027_replies_by_order_index.sql': '9e97f4dc227d0a2eb48f422794e6bf59c2825808eef4045c8a6ad49c2848e564',
  '028_drop_orders_sender_open_index.sql': 'beb389aab6b5ee52c2b5dadd651d0ae8030b452b92a3d4fbaf40ea379b763ee4',
  '029_earlier_provider_ids.sql': '37ba39c2c6d322681b69a8ec1a302f0f3320df86e738d69cd0e21301f3db3bd8',
  '030_erased_earlier_ids_index.sql': '5144942afe817dc0da9111f49277b1616a5585428c9aa1d8f094e96700f421be',
  '031_receipts_of_replaced_messages.sql': 'a63ad6a8e45e5e044d002a845c68f1518d6ba3ed9a1bff32c327b62da4095ac3',
  '032_undelivered_replies_index.sql': 'f6fde574e4ef725ec823e05d2532593a84f45a2d56ac60a0c6f2ab31c337430f',
  '033_sending_attempt.sql': '82c1c5639b36f4129a853f31cdc91eb7c18d2611dc309e4b2526af5559d23cc1',
  '034_message_ids_in_arrival_order.sql': '69d3a91acd04af3e27e5f6d47734f763b98bf273aa527dda7388a58403502852',
  '035_order_note.sql': '0adbcf1ac19e947d33a1e5a12321fe5f8eed8a7eb80158332a475215744692bb',
  '036_search_terms_spell_symbols.sql': '6b0ba24acbf74876fcde1f6a7fa32a4e9707b0faf298190dc85decdfcae958b7',
  '037_replies_created_at_index.sql': 'ebcace9cffee345aaa73581ffb1d9191d5070f3260ac939002419c8a9dc9c7fa',
  '038_performance_stats_utc_hours.sql': 'f137f876a9ad50573db130d249a571e534ccbae6088b302163e5dd1004696d39',
  '039_retry_attempt.sql': 'aaa7bcae167e00763b327e53f19b9699830f5ab296e8626d9a5568d63d9159be',
  '040_retry_attempt_until.sql': '19ca486be8277e78e715b782d2dfa72e9bf8bf45d0e5a755db83f340ebac175d',
  '041_retry_tier_delays.sql': '15a6136e125bf9510ec6b466f76647fbb62b7891aa9e345c5955b0fb2e6fbb42',
  '042_replies_to_clear_index.sql': 'd3e7df88e224038ce2687dbe619244bd7958d9bcce3d07f08b29c89595458917',
  '043_orders_to_clear_index.sql': '1be9c2bf5f4f859d6575aec02b4df6b1c2c480d083b0e51825318713f0c74e9a',
  '044_unfinished_by_sender_index.sql': '062142cd4b02daf6ef65513677a2a58484c143dc7ec02fb2e915866569e4c2d1',
};

it('ships every released migration exactly as released; new ones are added here once released', () => {
  const shipped = Object.fromEntries(readMigrations().map((migration) => [migration.name, migration.checksum]));
  const changed = Object.keys(SHIPPED).filter((name) => shipped[name] !== SHIPPED[name]);
  expect(changed).toEqual([]);
  const unlisted = Object.keys(shipped).filter((name) => !(name in SHIPPED));
  // A new migration is listed in the release that ships it.
  expect(unlisted).toEqual([]);
});

/**
 * The newest migration each published release shipped. Code that adds a migration after a
 * release ships under a new version: under the released one, an installation that upgrades
 * by that version's tag or chart would run the released image, without the migration, or a
 * rebuilt image beside nodes that cached the released one.
 */
const RELEASED_UP_TO: Record<string, number> = { '0.3.4': 27, '0.3.5': 29 };

it('ships no migration under a version already released without it, and writes upgrade notes for its own version first', () => {
  const { version } = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const newest = Math.max(...readMigrations().map((migration) => migration.version));
  if (version in RELEASED_UP_TO) expect(newest).toBeLessThanOrEqual(RELEASED_UP_TO[version]!);
  const operations = readFileSync(path.join(__dirname, '..', '..', 'docs', 'operations.md'), 'utf8');
  expect(/\*\*Upgrading to ([0-9.]+)\*\*/.exec(operations)?.[1]).toBe(version);
});
