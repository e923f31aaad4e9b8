import { addressVariants } from '../../src/ledger/addresses';

describe('the forms of one customer\'s number', () => {
  it('gives the number with and without +, and Twilio\'s whatsapp: form', () => {
    expect(addressVariants('+15550400021').sort()).toEqual(['+15550400021', '15550400021', 'whatsapp:+15550400021'].sort());
  });

  it.each([
    ['Mexico, dialled without the 1 WhatsApp keeps', '+525512345678', '5215512345678'],
    ['Mexico, given as WhatsApp\'s id', '5215512345678', '+525512345678'],
    ['Argentina, given without the mobile 9', '+541123456789', '5491123456789'],
    ['Argentina, given as WhatsApp\'s id', 'whatsapp:+5491123456789', '+541123456789'],
    ['Brazil, an older id without the ninth digit', '+5511987654321', '551187654321'],
    ['Brazil, given as an older id', '551187654321', 'whatsapp:+5511987654321'],
  ])('reaches %s', (_where, given, recorded) => {
    expect(addressVariants(given)).toContain(recorded);
  });

  it.each([
    ['a US number', '+15215512345'],
    ['a Brazilian landline (2 to 5 first), which never had a ninth digit', '+551132654321'],
    ['a Mexican number of another length', '+52551234567'],
  ])('adds nothing for %s', (_what, given) => {
    const digits = given.replace(/^\+/, '');
    expect(addressVariants(given).sort()).toEqual([given, digits, `whatsapp:+${digits}`].sort());
  });
});
