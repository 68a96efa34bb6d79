# Stream features before and after authentication, and the legacy session.
user alice secret
open a
send a <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>
expect a <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>
login b alice laptop
send b <iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>
expect b <iq type='result' id='s1'/>
